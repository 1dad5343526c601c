"""The annotate page: parse, call one service, render the page or its `#item` partial."""

from dataclasses import dataclass, replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.access import assignment_for_user, judgment_for_user, project_for_user
from labeling.forms import JudgmentForm
from labeling.models import Assignment, Judgment, Project
from labeling.rendering import render_diff
from labeling.services.assignment import assignment_next, assignment_prefetch, assignment_skip
from labeling.services.errors import DomainError, ItemWithdrawn
from labeling.services.items import response_label
from labeling.services.judgments import judgment_revise, judgment_submit, judgments_history
from labeling.services.progress import annotator_progress
from labeling.services.rankings import rank_of
from labeling.views.common import UNPROCESSABLE, AuthenticatedHttpRequest

STRENGTHS = ((1, "slightly", "Z"), (2, "clearly", "X"), (3, "much", "C"))


@dataclass(frozen=True)
class ShownResponse:
    """One response as the judgment form shows it: plain data, the loaded Response is left as it was."""

    pk: int
    label: str  # A, B, ... in the order this annotator sees them
    model: str
    content: str
    rank: int | str  # 1 = best; "" while unranked
    criteria: list[dict]  # the questions about it: a criterion's definition, its input's name, the answer so far
    tied: bool = False  # ranked equal with the response listed before it


def item_context(
    project: Project, assignment: Assignment, *, judgment: Judgment | None = None, form: JudgmentForm | None = None
) -> dict:
    """What the judgment form shows: the prompt, the responses as shown, the questions, earlier answers.

    `judgment`: the one being revised; `form`: a refused form, shown again with what was posted.
    """
    posted = form.data if form is not None else None
    if form is not None:
        ranks: dict = form.ranks_posted()
    else:
        ranks = rank_of(judgment.ranking, start=1) if judgment is not None else {}
    answers = form.criteria_answers() if form is not None else (judgment.criteria if judgment else {}) or {}
    shown = [
        ShownResponse(
            pk=response.pk,
            label=response_label(index),  # by the order shown, not by stored position
            model=response.model,
            content=response.content,
            rank=ranks.get(response.pk, ""),
            criteria=_response_criteria(project, answers, response.pk),
        )
        for index, response in enumerate(assignment.responses_shown())
    ]
    listed = shown
    pairwise = len(shown) == 2 and project.mode == Project.Mode.PAIRWISE
    if not pairwise and all(str(response.rank).isdigit() for response in shown):
        # A reopened (or refused) ranking is listed in its ranked order, ties marked,
        # so the first move starts from what was stored, not from the shown order.
        ranked = sorted(shown, key=lambda response: int(response.rank))
        listed = [
            replace(response, tied=previous is not None and int(previous.rank) == int(response.rank))
            for previous, response in zip([None, *ranked], ranked, strict=False)
        ]
    context = {
        "assignment": assignment,
        "prompt": assignment.item.prompt,
        "responses": listed,
        "pairwise": pairwise,
        "strengths": STRENGTHS,
        "item_criteria": [
            {**definition, "name": f"criteria.{definition['key']}", "value": answers.get(definition["key"])}
            for definition in project.criteria or []
            if not definition.get("per_response")
        ],
        "judgment": judgment,
        "choice": _choice(assignment, judgment) if judgment else (posted.get("choice") if posted else None),
        "initial": posted or {},
    }
    if len(shown) == 2:
        context["diff"] = render_diff(shown[0].content, shown[1].content)
    return context


def _response_criteria(project: Project, answers: dict, pk: int) -> list[dict]:
    """The criteria asked of each response (not those asked once of the item), with this response's answers."""
    questions = []
    for definition in project.criteria or []:
        if not definition.get("per_response"):
            continue
        value = answers.get(definition["key"], {})
        questions.append(
            {
                **definition,
                "name": f"criteria.{definition['key']}.{pk}",
                "value": value.get(str(pk)) if isinstance(value, dict) else None,
            }
        )
    return questions


def _choice(assignment: Assignment, judgment: Judgment) -> str:
    if len(judgment.ranking) == 1:
        return "tie"
    return "A" if judgment.ranking[0] == [assignment.shown_order[0]] else "B"


def _render(
    request: AuthenticatedHttpRequest,
    project: Project,
    assignment: Assignment | None,
    *,
    refused: JudgmentForm | None = None,
    error: str = "",
    notice: str = "",
    last_judgment: Judgment | None = None,
):
    """The page, or its `#item` partial for htmx. A refusal is a judgment form (`refused`, shown
    again as posted) or a skip's message (`error`); either way it is said above the item."""
    errors = list(refused.non_field_errors()) if refused is not None else [error] if error else []
    context = _body_context(project, assignment, form=refused)
    context.update(
        errors=errors,
        notice=notice,
        progress=annotator_progress(project=project, annotator=request.user),
        last_judgment=last_judgment,
        section="annotate",
    )
    if assignment is not None and not errors:
        # Lease the next item now and send it along, hidden, so the page shows it
        # the moment this one is judged.
        upcoming = assignment_prefetch(project=project, annotator=request.user)
        if upcoming is not None:
            context["next_assignment"] = upcoming
            context["next_html"] = render_to_string(
                "labeling/partials/item_body.html", _body_context(project, upcoming), request=request
            )
    template = "labeling/annotate.html#item" if request.htmx else "labeling/annotate.html"
    return render(request, template, context, status=UNPROCESSABLE if errors else 200)


def _body_context(project: Project, assignment: Assignment | None, *, form: JudgmentForm | None = None) -> dict:
    context: dict[str, object] = {"project": project, "assignment": assignment, "use_htmx": True}
    if assignment is not None:
        context["action"] = reverse("labeling:judge", args=[project.slug, assignment.pk])
        context["skip_form"] = f"skip-{assignment.pk}"  # its buttons sit in the judgment form's decision bar
        context.update(item_context(project, assignment, form=form))
    return context


@login_required
@require_GET
def annotate(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    judged = request.GET.get("judged")  # set by `judge` when it answers without JavaScript
    last = judgment_for_user(request.user, judged, project=project) if judged else None
    return _render(request, project, assignment_next(project=project, annotator=request.user), last_judgment=last)


@login_required
@require_POST
def judge(request: AuthenticatedHttpRequest, slug: str, assignment_id: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    form = JudgmentForm(request.POST, assignment=assignment, project=project)
    if not form.is_valid():
        return _render(request, project, assignment, refused=form)
    try:
        judgment, _ = judgment_submit(
            assignment_id=assignment.pk,
            project=project,
            annotator=request.user,
            visible_seconds=request.POST.get("visible_seconds"),
            **form.cleaned_data,
        )
    except ItemWithdrawn as error:  # nothing to fix on a withdrawn item: say so and move on to the next one
        return _render(request, project, assignment_next(project=project, annotator=request.user), notice=error.message)
    except DomainError as error:
        form.add_service_error(error)
        return _render(request, project, assignment, refused=form)
    if not request.htmx:
        return redirect(f"{reverse('labeling:annotate', args=[project.slug])}?judged={judgment.pk}")
    next_one = assignment_next(project=project, annotator=request.user)
    return _render(request, project, next_one, last_judgment=judgment)


@login_required
@require_POST
def skip(request: AuthenticatedHttpRequest, slug: str, assignment_id: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        assignment_skip(assignment=assignment, annotator=request.user, reason=request.POST.get("reason", ""))
    except DomainError as error:
        return _render(request, project, assignment, error=error.message)
    if not request.htmx:
        return redirect("labeling:annotate", slug=project.slug)
    return _render(request, project, assignment_next(project=project, annotator=request.user))


@login_required
@require_GET
def history(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    judgments = judgments_history(project=project, annotator=request.user)
    return render(request, "labeling/history.html", {"project": project, "judgments": judgments, "section": "history"})


@login_required
@require_http_methods(["GET", "POST"])
def revise(request: AuthenticatedHttpRequest, slug: str, judgment_id: str) -> HttpResponse:
    """Reopen a past judgment; a POST stores a new version and keeps the old one."""
    project = project_for_user(request.user, slug)
    judgment = judgment_for_user(request.user, judgment_id, project=project)
    assignment = judgment.assignment
    form = JudgmentForm(request.POST if request.method == "POST" else None, assignment=assignment, project=project)
    if form.is_valid():
        try:
            revised = judgment_revise(judgment=judgment, annotator=request.user, **form.cleaned_data)
        except DomainError as error:
            form.add_service_error(error)
        else:
            version = revised.revision
            messages.success(request, f"Saved: version {version} of your judgment on {judgment.item.external_id}.")
            return redirect("labeling:history", slug=project.slug)
    context = {
        "project": project,
        "section": "history",
        "errors": form.non_field_errors(),
        "action": reverse("labeling:revise", args=[project.slug, judgment.pk]),
        "revisions": judgment.revisions.all(),
        **item_context(project, assignment, judgment=judgment, form=form if form.errors else None),
    }
    return render(request, "labeling/revise.html", context, status=UNPROCESSABLE if form.errors else 200)
