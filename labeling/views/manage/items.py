"""Browse and search items with their judgments; gold answers, priority, withdraw and restore."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.access import item_in_project, project_for_manager
from labeling.models import Item, Project
from labeling.services.errors import DomainError
from labeling.services.items import (
    STATUSES,
    gold_answer_from_ranks,
    item_gold_set,
    item_priority_set,
    item_restore,
    item_rows,
    item_withdraw,
    items_page,
)
from labeling.views.manage.common import UNPROCESSABLE, HtmxHttpRequest, next_url

ROW_PARTIAL = "labeling/manage/items.html#item-row"


@login_required
@require_GET
def items(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    query, status = request.GET.get("q", ""), request.GET.get("status", "")
    if status not in STATUSES:
        status = ""
    page, rows = items_page(project=project, query=query, status=status, page=request.GET.get("page", 1))
    keep = QueryDict(mutable=True)
    keep.update({name: value for name, value in (("q", query), ("status", status)) if value})
    context = {
        "project": project,
        "page": page,
        "rows": rows,
        "query": query,
        "status": status,
        "statuses": STATUSES.items(),
        "keep": keep.urlencode(),
        "next": request.get_full_path(),
        "section": "items",
    }
    return render(request, "labeling/manage/items.html", context)


def _changed(
    request: HtmxHttpRequest, project: Project, item: Item, *, error: str = "", done: str = ""
) -> HttpResponse:
    """The item's row again (htmx), else back to the list the form was posted from."""
    if request.htmx:
        context = {
            "project": project,
            "row": item_rows(items=[item])[0],
            "error": error,
            "done": done,
            "next": next_url(request, "manage_items", project.slug),
        }
        return render(request, ROW_PARTIAL, context, status=UNPROCESSABLE if error else 200)
    if error:
        messages.error(request, f"{item.external_id}: {error}")
    elif done:
        messages.success(request, f"{item.external_id}: {done}")
    return redirect(next_url(request, "manage_items", project.slug))


def _item(request: HtmxHttpRequest, slug: str) -> tuple[Project, Item]:
    project = project_for_manager(request.user, slug)
    return project, item_in_project(project, request.POST.get("item", ""))


@login_required
@require_POST
def item_gold(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Mark the item gold with its answer (ranks per response position), or unmark it."""
    project, item = _item(request, slug)
    try:
        if request.POST.get("gold") == "off":
            item = item_gold_set(item=item, answer=None)
            done = "no longer gold."
        else:
            count = item.responses.count()
            ranks = {position: request.POST.get(f"rank_{position}", "") for position in range(count)}
            answer = gold_answer_from_ranks(ranks={p: r for p, r in ranks.items() if r != ""}, count=count)
            item = item_gold_set(item=item, answer=answer)
            done = "marked gold."
    except DomainError as error:
        return _changed(request, project, item, error=error.message)
    return _changed(request, project, item, done=done)


@login_required
@require_POST
def item_priority(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project, item = _item(request, slug)
    try:
        item = item_priority_set(item=item, priority=request.POST.get("priority", ""))
    except DomainError as error:
        return _changed(request, project, item, error=error.message)
    return _changed(request, project, item, done=f"priority set to {item.priority}.")


@login_required
@require_POST
def item_withdraw_view(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project, item = _item(request, slug)
    item = item_withdraw(item=item)
    return _changed(request, project, item, done="withdrawn; its judgments are kept.")


@login_required
@require_POST
def item_restore_view(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project, item = _item(request, slug)
    item = item_restore(item=item)
    return _changed(request, project, item, done="restored; it is handed out again.")
