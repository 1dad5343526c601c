"""The Items page: a sortable, paginated table whose rows open on demand; gold answers, priority, withdraw, restore."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling.access import item_in_project, project_for_manager
from labeling.models import Item, Project
from labeling.services.errors import DomainError
from labeling.services.items import (
    LABELS,
    PER_PAGE,
    PER_PAGE_CHOICES,
    SORTS,
    STATUSES,
    gold_answer_from_labels,
    item_gold_set,
    item_priority_set,
    item_restore,
    item_rows,
    item_withdraw,
    items_page,
)
from labeling.views.common import UNPROCESSABLE, AuthenticatedHttpRequest, HtmxHttpRequest, next_url

PAGE = "labeling/manage/items.html"
ROW_PARTIAL = "labeling/manage/items.html#item-row"
DETAIL = "labeling/manage/_item_detail.html"
# The table's sortable columns: (sort key, what the first click asks for).
SORT_COLUMNS = (("id", "id"), ("votes", "-votes"), ("priority", "-priority"))


def _choices(get: QueryDict) -> dict[str, str]:
    """The list's search, filter, sort and page size from the query string; unknown values fall back."""
    sort = get.get("sort", "")
    per = get.get("per", "")
    return {
        "q": get.get("q", ""),
        "status": get.get("status", "") if get.get("status", "") in STATUSES else "",
        "sort": sort if sort.removeprefix("-") in SORTS else "",
        "per": per if per in {str(choice) for choice in PER_PAGE_CHOICES if choice != PER_PAGE} else "",
    }


def _query(choices: dict[str, str], **changes) -> str:
    query = QueryDict(mutable=True)
    query.update({name: value for name, value in {**choices, **changes}.items() if value})
    return query.urlencode()


def _sort_links(choices: dict[str, str]) -> dict[str, dict]:
    """Per sortable column: the link that sorts by it (again: the other way) and its aria-sort."""
    sort = choices["sort"]
    links = {}
    for key, first in SORT_COLUMNS:
        current = sort.removeprefix("-") == key
        target = (key if sort.startswith("-") else f"-{key}") if current else first
        links[key] = {
            "query": _query(choices, sort=target),
            "aria": ("descending" if sort.startswith("-") else "ascending") if current else "none",
        }
    return links


def _open_id(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


@login_required
@require_GET
def items(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    choices = _choices(request.GET)
    open_id = _open_id(request.GET.get("open", ""))
    list_url = reverse("labeling:manage_items", args=[project.slug])
    keep = _query(choices, page=request.GET.get("page", ""))
    back = f"{list_url}?{keep}" if keep else list_url
    if request.htmx and open_id is not None:  # one row's details, opened on the page
        item = item_in_project(project, open_id)
        (row,) = item_rows(items=[item], open_ids={item.pk})
        return render(request, DETAIL, {"project": project, "row": row, "next": back})
    page, rows = items_page(
        project=project,
        query=choices["q"],
        status=choices["status"],
        sort=choices["sort"],
        per_page=int(choices["per"] or PER_PAGE),
        page=request.GET.get("page", 1),
        open_id=open_id,
    )
    context = {
        "project": project,
        "page": page,
        "rows": rows,
        "choices": choices,
        "statuses": STATUSES.items(),
        "per_page_choices": PER_PAGE_CHOICES,
        "per_page": int(choices["per"] or PER_PAGE),
        "sorts": _sort_links(choices),
        "keep": _query(choices),  # for the pages' links
        "keep_page": keep,  # for a row's "open" link
        "list_url": list_url,
        "next": back,
        "section": "items",
    }
    return render(request, PAGE, context)


def _changed(
    request: HtmxHttpRequest, project: Project, item: Item, *, error: str = "", done: str = ""
) -> HttpResponse:
    """The item's row again, opened (htmx), else back to the list the form was posted from."""
    if request.htmx:
        context = {
            "project": project,
            "row": item_rows(items=[item], open_ids={item.pk})[0],
            "error": error,
            "done": done,
            "next": next_url(request, "labeling:manage_items", project.slug),
        }
        return render(request, ROW_PARTIAL, context, status=UNPROCESSABLE if error else 200)
    if error:
        messages.error(request, f"{item.external_id}: {error}")
    elif done:
        messages.success(request, f"{item.external_id}: {done}")
    return redirect(next_url(request, "labeling:manage_items", project.slug))


def _item(request: AuthenticatedHttpRequest, slug: str) -> tuple[Project, Item]:
    project = project_for_manager(request.user, slug)
    return project, item_in_project(project, request.POST.get("item", ""))


@login_required
@require_POST
def item_gold(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Mark the item gold with its answer (A, B or tie; or a rank per lettered response), or unmark it."""
    project, item = _item(request, slug)
    try:
        if request.POST.get("gold") == "off":
            item = item_gold_set(item=item, answer=None)
            done = "no longer gold."
        else:
            count = item.responses.count()
            answer = gold_answer_from_labels(
                count=count,
                choice=request.POST.get("answer", ""),
                ranks={label: request.POST.get(f"rank_{label}", "") for label in LABELS[:count]},
            )
            item = item_gold_set(item=item, answer=answer)
            done = "marked gold."
    except DomainError as error:
        return _changed(request, project, item, error=error.message)
    return _changed(request, project, item, done=done)


@login_required
@require_POST
def item_priority(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project, item = _item(request, slug)
    try:
        item = item_priority_set(item=item, priority=request.POST.get("priority", ""))
    except DomainError as error:
        return _changed(request, project, item, error=error.message)
    return _changed(request, project, item, done=f"priority set to {item.priority}.")


@login_required
@require_POST
def item_withdraw_view(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project, item = _item(request, slug)
    item = item_withdraw(item=item)
    return _changed(request, project, item, done="withdrawn; its judgments are kept.")


@login_required
@require_POST
def item_restore_view(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project, item = _item(request, slug)
    item = item_restore(item=item)
    return _changed(request, project, item, done="restored; it is handed out again.")
