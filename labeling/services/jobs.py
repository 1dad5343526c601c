"""Background imports and exports: start a job, run it through the tasks API, poll it.

A job runs inline by default and in `manage.py db_worker` processes when
TASKS_BACKEND=database. Its progress travels through the shared cache (the import
itself is one transaction, invisible until it commits). A failed job records why
and leaves no partial data: imports roll back whole, exports write to a staging
folder first.
"""

import hashlib
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.files import File
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.text import get_valid_filename
from django_tasks import task

from labeling.models import Job, Project
from labeling.services.errors import DomainError, InvalidInput, NotFound
from labeling.services.exporting import ExportOptions, preferences_export
from labeling.services.importing import ImportRejected, items_import
from labeling.services.metrics.snapshot import stats_refresh_claim, stats_refresh_release, stats_snapshot_refresh
from labeling.services.parsing.readers import FORMATS, count_rows

ALLOWED_SUFFIXES = {".jsonl", ".ndjson", ".json", ".csv", ".parquet"}


def _job_dir(job: Job) -> Path:
    return Path(settings.LABELING_JOBS_DIR) / str(job.pk)


def _progress_key(job_id) -> str:
    return f"labeling:job:{job_id}:rows_done"


# Every import format but a dataset folder (`hf`), which is not one file.
UPLOAD_FORMATS = tuple(fmt for fmt in FORMATS if fmt != "hf")


def upload_format_checked(fmt: str) -> str:
    if fmt not in UPLOAD_FORMATS:
        raise InvalidInput(f"Format '{fmt}' is not accepted for uploads; use one of {', '.join(UPLOAD_FORMATS)}.")
    return fmt


def upload_checked(upload: File, fmt: str) -> str:
    """The safe file name of an upload, after checking its format and size (before anything is written)."""
    upload_format_checked(fmt)
    name = get_valid_filename(Path(upload.name or "upload").name) or "upload"
    if fmt == "auto" and Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
        raise InvalidInput(
            f"Cannot tell the format of '{name}'; name it .jsonl, .json, .csv or .parquet, or give the format."
        )
    if upload.size is not None and upload.size > settings.LABELING_MAX_UPLOAD_BYTES:
        raise InvalidInput(
            f"The file is {upload.size:,} bytes, over the limit of {settings.LABELING_MAX_UPLOAD_BYTES:,}."
        )
    return name


def upload_save(upload: File, path: Path) -> Path:
    """Write the upload to `path` (its folder is made), chunk by chunk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return path


def job_import_start(
    *, project: Project, user: User, upload: File, fmt: str = "auto", skip_invalid: bool = False
) -> Job:
    """Keep the uploaded file with a new import job and queue it. Files only: never a URL.

    The job row and its file appear together: if the file cannot be written, no job is left behind.
    """
    name = upload_checked(upload, fmt)
    job = Job(  # its id is known before it is saved: the file goes first, then the row
        project=project,
        kind=Job.Kind.IMPORT,
        created_by=user,
        params={"format": fmt, "skip_invalid": skip_invalid, "file_name": name},
    )
    path = _job_dir(job) / name
    try:
        upload_save(upload, path)
    except BaseException:
        shutil.rmtree(path.parent, ignore_errors=True)
        raise
    job.input_path = str(path)
    job.save()
    _enqueue(job)
    job.refresh_from_db()
    return job


def job_export_start(*, project: Project, user: User, options: ExportOptions) -> Job:
    """Queue an export; the result is a zip of the Hub layout (Parquet files and a dataset card)."""
    options = replace(options, fmt="parquet")  # the caller's options are left as they were
    options.validate()
    job = Job.objects.create(project=project, kind=Job.Kind.EXPORT, created_by=user, params=asdict(options))
    _enqueue(job)
    job.refresh_from_db()
    return job


def _enqueue(job: Job) -> None:
    # Queue only once the job row is committed, so a worker can always find it.
    transaction.on_commit(lambda: run_job.enqueue(str(job.pk)))


@task()
def run_job(job_id: str) -> None:
    """The task body: claim the job once, run it, record the outcome."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(state=Job.State.RUNNING, started_at=now)
    if not claimed:
        return  # already run, or being run by another worker
    job = Job.objects.select_related("project").get(pk=job_id)
    try:
        result = _run_import(job) if job.kind == Job.Kind.IMPORT else _run_export(job)
    except DomainError as error:
        _finish(job, Job.State.FAILED, error=error.message, result=_rejected(error))
        return
    except Exception as error:  # record any failure on the job instead of losing it
        _finish(job, Job.State.FAILED, error=f"Internal error ({type(error).__name__}); nothing was written.")
        raise
    _finish(job, Job.State.SUCCEEDED, result=result)


def stats_refresh_start(*, project: Project) -> bool:
    """Queue one background refresh of the project's stored stats document (the dashboard's).

    False when one is already queued or running, or when the task backend refused it; the
    last document stays shown either way. Under the immediate backend the refresh runs here.
    """
    if not stats_refresh_claim(project=project):
        return False
    try:
        refresh_stats.enqueue(project.pk)
    except Exception as error:  # a refused enqueue must not keep the slot taken
        stats_refresh_release(project=project, error=f"The refresh could not be queued ({type(error).__name__}).")
        return False
    return True


@task()
def refresh_stats(project_id: int) -> None:
    """The task body: recompute and store the project's stats document (see metrics.snapshot)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        stats_snapshot_refresh(project=project)


def _rejected(error: DomainError) -> dict:
    if isinstance(error, ImportRejected):
        return {"rejected": [{"row": row, "reason": reason} for row, reason in error.report.rejected]}
    return {}


def _run_import(job: Job) -> dict:
    path = Path(job.input_path)
    total = count_rows(path, job.params.get("format", "auto"))
    Job.objects.filter(pk=job.pk).update(rows_total=total)

    def progress(rows: int) -> None:
        cache.set(_progress_key(job.pk), rows, timeout=24 * 3600)

    report = items_import(
        project=job.project,
        path=path,
        fmt=job.params.get("format", "auto"),
        skip_invalid=job.params.get("skip_invalid", False),
        progress=progress,
    )
    return {
        "shape": report.shape,
        "rows": report.rows,
        "imported": report.imported,
        "skipped_existing": report.skipped_existing,
        "skipped_duplicate": report.skipped_duplicate,
        "rejected": [{"row": row, "reason": reason} for row, reason in report.rejected],
        "rejected_count": report.rejected_count,
    }


def _run_export(job: Job) -> dict:
    folder = _job_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "export"
    shutil.rmtree(out, ignore_errors=True)
    report = preferences_export(project=job.project, out_dir=out, options=ExportOptions(**job.params))
    archive = Path(shutil.make_archive(str(folder / f"{job.project.slug}-preferences"), "zip", root_dir=out))
    shutil.rmtree(out, ignore_errors=True)
    digest = hashlib.sha256()
    with archive.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    Job.objects.filter(pk=job.pk).update(output_path=str(archive), checksum=digest.hexdigest())
    return {
        "rows": report.rows,
        "items": report.items,
        "judgments": report.judgments,
        "left_out": {"tied": report.counts.tied, "split": report.counts.split},
    }


def _finish(job: Job, state: str, *, error: str = "", result: dict | None = None) -> None:
    done = cache.get(_progress_key(job.pk)) or 0
    if state == Job.State.SUCCEEDED and result and "rows" in result and isinstance(result["rows"], int):
        done = result["rows"]
    Job.objects.filter(pk=job.pk).update(
        state=state, error=error, result=result or {}, rows_done=done, finished_at=timezone.now()
    )
    cache.delete(_progress_key(job.pk))


def job_status(*, job: Job) -> dict:
    """The job as the UI and the API show it, with live progress while it runs."""
    rows_done = job.rows_done
    if job.state == Job.State.RUNNING:
        rows_done = cache.get(_progress_key(job.pk)) or rows_done
    return {
        "job": str(job.pk),
        "kind": job.kind,
        "state": job.state,
        "rows_done": rows_done,
        "rows_total": job.rows_total,
        "result": job.result,
        "error": job.error or None,
        "checksum": job.checksum or None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def job_download_name(*, job: Job) -> str:
    """The file name a finished export downloads as: project, config, style and the day it finished.

    e.g. `helpfulness-default-conversational-2026-12-07.zip`; the browser and the API both use it,
    so two exports of one project no longer download under the same name.
    """
    options = ExportOptions(**job.params)
    day = timezone.localdate(job.finished_at or job.created_at)
    return get_valid_filename(f"{job.project.slug}-{options.config}-{options.style}-{day.isoformat()}.zip")


def job_download_path(*, job: Job) -> Path:
    """The finished export's zip file."""
    if job.kind != Job.Kind.EXPORT or job.state != Job.State.SUCCEEDED or not job.output_path:
        raise NotFound("This job has no file to download (yet).")
    path = Path(job.output_path)
    if not path.is_file():
        raise NotFound("The export file is gone; start the export again.")
    return path


def jobs_recent(*, project: Project, kind: str, limit: int = 50) -> QuerySet[Job]:
    """The project's latest jobs of one kind, newest first, with who started them."""
    return Job.objects.filter(project=project, kind=kind).select_related("created_by").order_by("-created_at")[:limit]
