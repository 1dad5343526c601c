"""Create a project, change its settings (with a guidelines preview), archive and reopen it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labeling.access import project_for_manager
from labeling.forms import NewProjectForm, ProjectForm
from labeling.services.errors import DomainError
from labeling.services.projects import (
    project_archive,
    project_create_managed,
    project_locks,
    project_reopen,
    project_update,
)
from labeling.views.common import UNPROCESSABLE, AuthenticatedHttpRequest, HtmxHttpRequest

PREVIEW_PARTIAL = "labeling/manage/project_form.html#preview"


def _preview(request: HtmxHttpRequest, template: str, context: dict) -> HttpResponse | None:
    """The guidelines as annotators will see them, without saving: a partial for htmx, else the page."""
    if request.method != "POST" or not request.POST.get("preview"):
        return None
    context["preview"] = request.POST.get("guidelines", "")
    return render(request, PREVIEW_PARTIAL if request.htmx else template, context)


@login_required
@require_http_methods(["GET", "POST"])
def project_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A new project, with its creator as manager. Needs the add-project permission (as over the API)."""
    if not request.user.has_perm("labeling.add_project"):
        raise PermissionDenied("You may not create projects; ask an administrator for the permission.")
    form = NewProjectForm(request.POST or None)
    context = {"form": form}
    if (preview := _preview(request, "labeling/manage/new.html", context)) is not None:
        return preview
    if request.method == "POST" and form.is_valid():
        try:
            project = project_create_managed(creator=request.user, slug=form.cleaned_data["slug"], **form.settings())
        except DomainError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"Project “{project.title}” created. Next: import items and add annotators.")
            return redirect("labeling:manage_import", slug=project.slug)
    return render(request, "labeling/manage/new.html", context, status=UNPROCESSABLE if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    locks = project_locks(project=project)
    form = ProjectForm(request.POST or None, project=project, locks=locks)
    context = {"project": project, "form": form, "locks": locks, "section": "settings"}
    if (preview := _preview(request, "labeling/manage/settings.html", context)) is not None:
        return preview
    if request.method == "POST" and form.is_valid():
        try:
            project_update(project=project, **form.settings())
        except DomainError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("labeling:manage_settings", slug=project.slug)
    return render(request, "labeling/manage/settings.html", context, status=UNPROCESSABLE if form.errors else 200)


@login_required
@require_POST
def archive(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_archive(project=project_for_manager(request.user, slug))
    messages.success(request, "Archived: no more work is handed out. Items, judgments and exports stay.")
    return redirect("labeling:manage_settings", slug=project.slug)


@login_required
@require_POST
def reopen(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_reopen(project=project_for_manager(request.user, slug))
    messages.success(request, "Reopened: annotators are given work again.")
    return redirect("labeling:manage_settings", slug=project.slug)
