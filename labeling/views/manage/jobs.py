"""Imports (checked before they run) and exports as background jobs, their progress and results."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from labeling.access import job_in_project, project_for_manager
from labeling.forms import ExportForm, ImportForm
from labeling.models import Job, Project
from labeling.services.errors import DomainError, NotFound
from labeling.services.exporting import ExportOptions
from labeling.services.jobs import job_download_name, job_download_path, job_export_start, job_status, jobs_recent
from labeling.services.uploads import import_preview, staged_discard, staged_import_start
from labeling.views.common import UNPROCESSABLE, AuthenticatedHttpRequest, HtmxHttpRequest

JOB_PARTIAL = "labeling/manage/job.html#job"


RECENT: dict[str, int] = {Job.Kind.IMPORT: 20, Job.Kind.EXPORT: 50}  # jobs listed under the Import and Export pages


def _job_context(project: Project, job: Job, *, swap_recent: bool = False) -> dict:
    """`swap_recent` (htmx, on the Import or Export page): once the job has ended, the page's
    list of recent jobs comes along out of band, so it shows the job without a reload."""
    status = job_status(job=job)
    running = status["state"] in (Job.State.QUEUED, Job.State.RUNNING)
    context = {
        "project": project,
        "section": job.kind,  # the Import or Export tab
        "job": job,
        "status": status,
        "running": running,
        "percent": round(100 * status["rows_done"] / status["rows_total"]) if status["rows_total"] else None,
    }
    if swap_recent and not running:
        context["recent"] = {
            "template": f"labeling/manage/_recent_{job.kind}s.html",
            "jobs": jobs_recent(project=project, kind=job.kind, limit=RECENT[job.kind]),
        }
    return context


def _started(request: HtmxHttpRequest, project: Project, job: Job) -> HttpResponse:
    """After starting a job: its progress in place (htmx), else its own page."""
    if request.htmx:
        job.refresh_from_db()
        return render(request, JOB_PARTIAL, _job_context(project, job, swap_recent=True))
    return redirect("labeling:manage_job", slug=project.slug, job_id=job.pk)


# -- import ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def import_page(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Upload a file and see what importing it would do (shape, first items, bad rows); nothing is written."""
    project = project_for_manager(request.user, slug)
    form = ImportForm(request.POST or None, request.FILES or None)
    preview, status = None, 200
    if request.method == "POST" and form.is_valid():
        try:
            preview = import_preview(
                project=project, user=request.user, upload=form.cleaned_data["file"], fmt=form.cleaned_data["format"]
            )
        except DomainError as error:
            form.add_service_error(error)
    if form.errors:
        status = UNPROCESSABLE
    context = {
        "project": project,
        "form": form,
        "preview": preview,
        "jobs": jobs_recent(project=project, kind=Job.Kind.IMPORT, limit=RECENT[Job.Kind.IMPORT]),
        "section": "import",
    }
    return render(request, "labeling/manage/import.html", context, status=status)


@login_required
@require_POST
def import_start(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Import the previewed file as a background job."""
    project = project_for_manager(request.user, slug)
    try:
        job = staged_import_start(
            project=project,
            user=request.user,
            upload_id=request.POST.get("upload", ""),
            fmt=request.POST.get("format", "auto"),
            skip_invalid=request.POST.get("skip_invalid") in {"on", "1", "true"},
        )
    except DomainError as error:
        messages.error(request, error.message)
        if request.htmx:
            return HttpResponseClientRedirect(reverse("labeling:manage_import", args=[project.slug]))
        return redirect("labeling:manage_import", slug=project.slug)
    return _started(request, project, job)


@login_required
@require_POST
def import_discard(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    staged_discard(project=project, user=request.user, upload_id=request.POST.get("upload", ""))
    return redirect("labeling:manage_import", slug=project.slug)


# -- export ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def export_page(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Choose the export's settings and start it; past exports with their counts, settings and checksums."""
    project = project_for_manager(request.user, slug)
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = job_export_start(project=project, user=request.user, options=ExportOptions(**form.options()))
        except DomainError as error:
            form.add_service_error(error)
        else:
            return _started(request, project, job)
    context = {
        "project": project,
        "form": form,
        "jobs": jobs_recent(project=project, kind=Job.Kind.EXPORT, limit=RECENT[Job.Kind.EXPORT]),
        "section": "export",
    }
    if form.errors and request.htmx:
        # The form posts into #job (where a started job appears); a refused form replaces itself instead,
        # or the page would end up with two forms and no #job for the next attempt.
        response = render(request, "labeling/manage/export.html#export-form", context, status=UNPROCESSABLE)
        return reswap(retarget(response, "#export-form"), "outerHTML")
    return render(request, "labeling/manage/export.html", context, status=UNPROCESSABLE if form.errors else 200)


# -- jobs -----------------------------------------------------------------------


@login_required
@require_GET
@never_cache
def job_page(request: AuthenticatedHttpRequest, slug: str, job_id: str) -> HttpResponse:
    """A job's state and progress; htmx polls the `#job` partial every second until it ends."""
    project = project_for_manager(request.user, slug)
    context = _job_context(project, job_in_project(project, job_id), swap_recent=bool(request.htmx))
    return render(request, JOB_PARTIAL if request.htmx else "labeling/manage/job.html", context)


@login_required
@require_GET
def job_download(request: AuthenticatedHttpRequest, slug: str, job_id: str) -> HttpResponse | FileResponse:
    """The finished export: a zip of the Hub layout (Parquet files and a README.md dataset card)."""
    project = project_for_manager(request.user, slug)
    job = job_in_project(project, job_id)
    if job.kind != Job.Kind.EXPORT:
        raise Http404("Only exports have a file to download.")
    try:
        path = job_download_path(job=job)
    except NotFound as error:
        messages.error(request, error.message)
        return redirect("labeling:manage_job", slug=project.slug, job_id=job.pk)
    name = job_download_name(job=job)
    return FileResponse(path.open("rb"), as_attachment=True, filename=name, content_type="application/zip")
