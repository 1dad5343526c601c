"""The annotate page: parse, call one service, render the page or its `#item` partial."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.access import assignment_for_user, judgment_for_user, project_for_user
from labeling.forms import criteria_from_post, judgment_from_post
from labeling.models import Assignment, Judgment, Project
from labeling.rendering import render_diff
from labeling.services.assignment import assignment_next, assignment_prefetch, assignment_skip
from labeling.services.errors import DomainError, ItemWithdrawn
from labeling.services.judgments import judgment_revise, judgment_submit, judgments_history
from labeling.services.progress import annotator_progress
from labeling.services.rankings import rank_of
from labeling.views.manage.common import HtmxHttpRequest

LABELS = "ABCDEFGH"
STRENGTHS = ((1, "slightly", "Z"), (2, "clearly", "X"), (3, "much", "C"))


def item_context(project: Project, assignment: Assignment, *, judgment: Judgment | None = None, post=None) -> dict:
    """What the judgment form shows: the prompt, the responses as shown, the questions, earlier answers."""
    responses = {response.pk: response for response in assignment.item.responses.all()}
    shown = [responses[pk] for pk in assignment.shown_order]
    ranks = rank_of(judgment.ranking, start=1) if judgment is not None else {}
    if post is not None:
        ranks = {pk: post.get(f"rank_{pk}", "") for pk in assignment.shown_order}
    criteria = (judgment.criteria if judgment else {}) or {}
    if post is not None:
        criteria = criteria_from_post(post, project, assignment)
    for label, response in zip(LABELS, shown, strict=False):
        response.label = label
        response.pk_str = str(response.pk)
        response.rank = ranks.get(response.pk, "")
    for definition in project.criteria or []:
        for response in shown:
            value = criteria.get(definition["key"], {})
            response.__dict__.setdefault("criteria", []).append(
                {**definition, "value": value.get(str(response.pk)) if isinstance(value, dict) else None}
            )
    listed = shown
    pairwise = len(shown) == 2 and project.mode == Project.Mode.PAIRWISE
    if not pairwise and all(str(response.rank).isdigit() for response in shown):
        # A reopened (or refused) ranking is listed in its ranked order, ties marked,
        # so the first move starts from what was stored, not from the shown order.
        listed = sorted(shown, key=lambda response: int(response.rank))
        for previous, response in zip([None, *listed], listed, strict=False):
            response.tied = previous is not None and int(previous.rank) == int(response.rank)
    context = {
        "assignment": assignment,
        "prompt": assignment.item.prompt,
        "responses": listed,
        "pairwise": pairwise,
        "strengths": STRENGTHS,
        "item_criteria": [
            {**definition, "value": criteria.get(definition["key"])}
            for definition in project.criteria or []
            if not definition.get("per_response")
        ],
        "judgment": judgment,
        "choice": _choice(assignment, judgment) if judgment else (post.get("choice") if post else None),
        "initial": post or {},
    }
    if len(shown) == 2:
        context["diff"] = render_diff(shown[0].content, shown[1].content)
    return context


def _choice(assignment: Assignment, judgment: Judgment) -> str:
    if len(judgment.ranking) == 1:
        return "tie"
    return "A" if judgment.ranking[0] == [assignment.shown_order[0]] else "B"


def _render(
    request: HtmxHttpRequest,
    project: Project,
    assignment: Assignment | None,
    *,
    error="",
    notice="",
    status=200,
    last_judgment: Judgment | None = None,
):
    context = _body_context(project, assignment, post=request.POST if error else None)
    context.update(
        error=error,
        notice=notice,
        progress=annotator_progress(project=project, annotator=request.user),
        last_judgment=last_judgment,
        section="annotate",
    )
    if assignment is not None and not error:
        # Lease the next item now and send it along, hidden, so the page shows it
        # the moment this one is judged.
        upcoming = assignment_prefetch(project=project, annotator=request.user)
        if upcoming is not None:
            context["next_assignment"] = upcoming
            context["next_html"] = render_to_string(
                "labeling/partials/item_body.html", _body_context(project, upcoming), request=request
            )
    template = "labeling/annotate.html#item" if request.htmx else "labeling/annotate.html"
    return render(request, template, context, status=status)


def _body_context(project: Project, assignment: Assignment | None, *, post=None) -> dict:
    context = {"project": project, "assignment": assignment, "use_htmx": True}
    if assignment is not None:
        context["action"] = reverse("judge", args=[project.slug, assignment.pk])
        context["skip_form"] = f"skip-{assignment.pk}"  # its buttons sit in the judgment form's decision bar
        context.update(item_context(project, assignment, post=post))
    return context


@login_required
@require_GET
def annotate(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    judged = request.GET.get("judged")  # set by `judge` when it answers without JavaScript
    last = judgment_for_user(request.user, judged, project=project) if judged else None
    return _render(request, project, assignment_next(project=project, annotator=request.user), last_judgment=last)


@login_required
@require_POST
def judge(request: HtmxHttpRequest, slug: str, assignment_id: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        fields = judgment_from_post(request.POST, assignment=assignment, project=project)
        judgment, _ = judgment_submit(
            assignment=assignment,
            annotator=request.user,
            visible_seconds=request.POST.get("visible_seconds"),
            **fields,
        )
    except ItemWithdrawn as error:  # nothing to fix on a withdrawn item: say so and move on to the next one
        return _render(request, project, assignment_next(project=project, annotator=request.user), notice=error.message)
    except DomainError as error:
        return _render(request, project, assignment, error=error.message, status=422)
    if not request.htmx:
        return redirect(f"{reverse('annotate', args=[project.slug])}?judged={judgment.pk}")
    next_one = assignment_next(project=project, annotator=request.user)
    return _render(request, project, next_one, last_judgment=judgment)


@login_required
@require_POST
def skip(request: HtmxHttpRequest, slug: str, assignment_id: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        assignment_skip(assignment=assignment, annotator=request.user, reason=request.POST.get("reason", ""))
    except DomainError as error:
        return _render(request, project, assignment, error=error.message, status=422)
    if not request.htmx:
        return redirect("annotate", slug=project.slug)
    return _render(request, project, assignment_next(project=project, annotator=request.user))


@login_required
@require_GET
def history(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    judgments = judgments_history(project=project, annotator=request.user)
    return render(request, "labeling/history.html", {"project": project, "judgments": judgments, "section": "history"})


@login_required
@require_http_methods(["GET", "POST"])
def revise(request: HttpRequest, slug: str, judgment_id: str) -> HttpResponse:
    """Reopen a past judgment; a POST stores a new version and keeps the old one."""
    project = project_for_user(request.user, slug)
    judgment = judgment_for_user(request.user, judgment_id, project=project)
    assignment = judgment.assignment
    error, status = "", 200
    if request.method == "POST":
        try:
            fields = judgment_from_post(request.POST, assignment=assignment, project=project)
            revised = judgment_revise(judgment=judgment, annotator=request.user, **fields)
            version = revised.revision
            messages.success(request, f"Saved: version {version} of your judgment on {judgment.item.external_id}.")
            return redirect("history", slug=project.slug)
        except DomainError as exc:
            error, status = exc.message, 422
    context = {
        "project": project,
        "section": "history",
        "error": error,
        "action": reverse("revise", args=[project.slug, judgment.pk]),
        "revisions": judgment.revisions.all(),
        **item_context(project, assignment, judgment=judgment, post=request.POST if error else None),
    }
    return render(request, "labeling/revise.html", context, status=status)
