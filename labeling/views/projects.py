"""Project list and the manager's overview."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labeling.access import project_for_user
from labeling.services.metrics import project_stats
from labeling.services.progress import projects_progress


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "labeling/home.html", {"rows": projects_progress(user=request.user)})


@login_required
@require_GET
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, manager=True)
    return render(request, "labeling/overview.html", {"project": project, "stats": project_stats(project=project)})
