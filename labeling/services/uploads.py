"""Uploads checked before they import: staged, dry-run, then imported as a job or discarded.

An uploaded file is kept aside ("staged") under the jobs folder, in a folder of its
own per project and user, and dry-run: the manager sees its shape, its first items
and every bad row before anything is written. Importing it then starts the ordinary
import job (labeling.services.jobs) on that very file.
"""

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile

from labeling.models import Job, Project
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.importing import ImportRejected, items_import
from labeling.services.jobs import job_import_start, upload_checked, upload_format_checked, upload_save
from labeling.services.parsing.readers import RowError, read_rows
from labeling.services.parsing.shapes import NormalizedItem, RowInvalid, detect_shape, normalize

SAMPLE_ITEMS = 5
SAMPLE_ROWS_READ = 200
STAGED_MAX_AGE_SECONDS = 24 * 3600


@dataclass
class ImportPreview:
    """What importing a staged file would do; nothing has been written."""

    upload: str
    file_name: str
    fmt: str
    size: int
    shape: str | None = None
    rows: int = 0
    new_items: int = 0
    skipped_existing: int = 0
    skipped_duplicate: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejected_count: int = 0
    error: str | None = None
    samples: list[NormalizedItem] = field(default_factory=list)

    @property
    def importable(self) -> bool:
        return self.error is None and self.rejected_count == 0 and self.rows > 0


def _staging_root(project: Project, user: User) -> Path:
    return Path(settings.LABELING_JOBS_DIR) / "staged" / str(project.pk) / str(user.pk)


def _staged_file(project: Project, user: User, upload_id: str) -> Path:
    """The staged file of this project and user, by its id; a forged or stale id is not found."""
    try:
        folder = _staging_root(project, user) / str(uuid.UUID(str(upload_id)))
    except ValueError:
        raise NotFound("That upload is gone; upload the file again.") from None
    files = [path for path in folder.iterdir() if path.is_file()] if folder.is_dir() else []
    if len(files) != 1:
        raise NotFound("That upload is gone; upload the file again.")
    return files[0]


def import_preview(*, project: Project, user: User, upload: UploadedFile, fmt: str = "auto") -> ImportPreview:
    """Keep the uploaded file aside and dry-run it: shape, counts, bad rows, the first items. Writes no items."""
    name = upload_checked(upload, fmt)
    _discard_stale(project, user)
    upload_id = str(uuid.uuid4())
    upload_save(upload, _staging_root(project, user) / upload_id / name)
    return staged_preview(project=project, user=user, upload_id=upload_id, fmt=fmt)


def staged_preview(*, project: Project, user: User, upload_id: str, fmt: str = "auto") -> ImportPreview:
    """The dry run of a staged file (see import_preview)."""
    path = _staged_file(project, user, upload_id)
    preview = ImportPreview(
        upload=upload_id, file_name=path.name, fmt=upload_format_checked(fmt), size=path.stat().st_size
    )
    try:
        # skip_invalid: count what the valid rows would add, and list the invalid ones.
        report = items_import(project=project, path=path, fmt=fmt, dry_run=True, skip_invalid=True)
    except ImportRejected as error:  # not one valid row: refused, with the rows' reasons
        report, preview.error = error.report, error.message.splitlines()[0]
    except InvalidInput as error:
        preview.error = error.message
        return preview
    preview.shape = report.shape
    preview.rows = report.rows
    preview.new_items = report.imported
    preview.skipped_existing = report.skipped_existing
    preview.skipped_duplicate = report.skipped_duplicate
    preview.rejected = list(report.rejected)
    preview.rejected_count = report.rejected_count
    preview.samples = _samples(path, fmt)
    return preview


def _samples(path: Path, fmt: str) -> list[NormalizedItem]:
    """The first items of the file as annotators will see them (invalid rows passed over)."""
    samples: list[NormalizedItem] = []
    shape = None
    for index, (_number, row) in enumerate(read_rows(path, fmt)):
        if len(samples) >= SAMPLE_ITEMS or index >= SAMPLE_ROWS_READ:
            break
        if isinstance(row, RowError):
            continue
        try:
            shape = shape or detect_shape(set(row))
            samples.extend(normalize(row, shape))
        except RowInvalid:
            continue
    return samples[:SAMPLE_ITEMS]


def staged_import_start(
    *, project: Project, user: User, upload_id: str, fmt: str = "auto", skip_invalid: bool = False
) -> Job:
    """Import a staged file as a background job; the staged copy is then dropped."""
    path = _staged_file(project, user, upload_id)
    with path.open("rb") as handle:
        upload = File(handle, name=path.name)
        job = job_import_start(project=project, user=user, upload=upload, fmt=fmt, skip_invalid=skip_invalid)
    shutil.rmtree(path.parent, ignore_errors=True)
    return job


def staged_discard(*, project: Project, user: User, upload_id: str) -> None:
    """Drop a staged file the manager decided not to import."""
    try:
        path = _staged_file(project, user, upload_id)
    except NotFound:
        return
    shutil.rmtree(path.parent, ignore_errors=True)


def _discard_stale(project: Project, user: User) -> None:
    """Uploads previewed but never imported are dropped after a day."""
    root = _staging_root(project, user)
    if not root.is_dir():
        return
    cutoff = time.time() - STAGED_MAX_AGE_SECONDS
    for folder in root.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
