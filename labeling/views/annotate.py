"""The annotate page: parse, call one service, render the page or its `#item` partial."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from labeling.access import assignment_for_user, project_for_user
from labeling.models import Assignment, Project
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.errors import DomainError
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.progress import annotator_progress

LABELS = "ABCDEFGH"


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _render(request: HtmxHttpRequest, project: Project, assignment: Assignment | None, *, error: str = "", status=200):
    context = {
        "project": project,
        "assignment": assignment,
        "error": error,
        "progress": annotator_progress(project=project, annotator=request.user),
    }
    if assignment is not None:
        responses = {response.pk: response for response in assignment.item.responses.all()}
        shown = [responses[pk] for pk in assignment.shown_order]
        for label, response in zip(LABELS, shown, strict=False):
            response.label = label
        context["responses"] = shown
        context["prompt"] = assignment.item.prompt
    template = "labeling/annotate.html#item" if request.htmx else "labeling/annotate.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def annotate(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    return _render(request, project, assignment_next(project=project, annotator=request.user))


@login_required
@require_POST
def judge(request: HtmxHttpRequest, slug: str, assignment_id: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        ranking = ranking_from_choice(assignment=assignment, choice=request.POST.get("choice", ""))
        judgment_submit(assignment=assignment, annotator=request.user, ranking=ranking)
    except DomainError as error:
        return _render(request, project, assignment, error=error.message, status=422)
    if not request.htmx:
        return redirect("annotate", slug=project.slug)
    return _render(request, project, assignment_next(project=project, annotator=request.user))


@login_required
@require_POST
def skip(request: HtmxHttpRequest, slug: str, assignment_id: str) -> HttpResponse:
    project = project_for_user(request.user, slug)
    assignment = assignment_for_user(request.user, assignment_id, project=project)
    try:
        assignment_skip(assignment=assignment, annotator=request.user, reason=request.POST.get("reason", ""))
    except DomainError as error:
        return _render(request, project, assignment, error=error.message, status=409)
    if not request.htmx:
        return redirect("annotate", slug=project.slug)
    return _render(request, project, assignment_next(project=project, annotator=request.user))
