"""Import items from files: every row validated, all or nothing.

`items_import` streams the file in batches inside one transaction. Any invalid row
rolls the whole import back (unless `skip_invalid`), so a failed import changes
nothing; rows whose external id the project already has are skipped and counted.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.db import transaction

from labeling.models import Project
from labeling.services.errors import InvalidInput
from labeling.services.importing.readers import BATCH_ROWS, RowError, read_rows
from labeling.services.importing.shapes import NormalizedItem, RowInvalid, detect_shape, normalize
from labeling.services.importing.writer import BatchWriter
from labeling.services.memory import older_objects_frozen

__all__ = ["ImportRejected", "ImportReport", "items_import"]

MAX_LISTED_ERRORS = 100


@dataclass
class ImportReport:
    shape: str | None = None
    rows: int = 0
    imported: int = 0
    skipped_existing: int = 0
    skipped_duplicate: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejected_count: int = 0
    dry_run: bool = False

    def reject(self, number: int, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_LISTED_ERRORS:
            self.rejected.append((number, reason))


class ImportRejected(InvalidInput):
    """Some rows are invalid; nothing was imported. `report` lists them."""

    def __init__(self, report: ImportReport):
        more = report.rejected_count - len(report.rejected)
        lines = [f"row {number}: {reason}" for number, reason in report.rejected]
        if more:
            lines.append(f"... and {more} more")
        super().__init__(
            f"{report.rejected_count} of {report.rows} rows are invalid; nothing was imported.\n" + "\n".join(lines)
        )
        self.report = report


class _Rollback(Exception):
    pass


def items_import(
    *,
    project: Project,
    path: Path | str,
    fmt: str = "auto",
    dry_run: bool = False,
    skip_invalid: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate every row of `path` and create its items, or nothing at all.

    Raises ImportRejected (with the rows and reasons) when any row is invalid and
    `skip_invalid` is off; raises InvalidInput when the file itself is unreadable.
    """
    report = ImportReport(dry_run=dry_run)
    try:
        with older_objects_frozen(), transaction.atomic():
            _import_rows(project, read_rows(Path(path), fmt), report, skip_invalid, progress, write=not dry_run)
            if report.rejected_count and not skip_invalid:
                raise _Rollback
            if dry_run:
                raise _Rollback
    except _Rollback:
        if report.rejected_count and not skip_invalid:
            report.imported = 0
            raise ImportRejected(report) from None
    if report.rows == 0:
        raise InvalidInput(f"'{Path(path).name}' holds no rows.")
    return report


def _import_rows(project, rows, report: ImportReport, skip_invalid: bool, progress, *, write: bool) -> None:
    seen: set[str] = set()
    batch: list[NormalizedItem] = []
    with BatchWriter(project) as writer:
        for number, row in rows:
            report.rows += 1
            for item in _normalize_row(number, row, report):
                if item.external_id in seen:
                    report.skipped_duplicate += 1
                else:
                    seen.add(item.external_id)
                    batch.append(item)
            if len(batch) >= BATCH_ROWS:
                writer.wait()  # the callback may use the database, which serves one command at a time
                if progress:
                    progress(report.rows)
                _write_batch(writer, batch, report, write=write and not (report.rejected_count and not skip_invalid))
                batch = []
        _write_batch(writer, batch, report, write=write and not (report.rejected_count and not skip_invalid))
    if progress:
        progress(report.rows)


@lru_cache(maxsize=256)
def _shape_of_columns(columns: tuple) -> str:
    """`detect_shape`, remembered by the row's columns in order: the rows of a file share them."""
    return detect_shape(set(columns))


def _shape_of(row: dict) -> str:
    return _shape_of_columns(tuple(row))


def _normalize_row(number: int, row: dict | RowError, report: ImportReport) -> list[NormalizedItem]:
    """The row's items (an OpenAssistant tree holds several), or none when it is invalid."""
    if isinstance(row, RowError):
        report.reject(number, row.reason)
        return []
    try:
        shape = _shape_of(row)
        if report.shape is None:
            report.shape = shape
        elif shape != report.shape:
            raise RowInvalid(f"has the {shape} shape but earlier rows have the {report.shape} shape")
        return normalize(row, shape)
    except RowInvalid as error:
        report.reject(number, str(error))
        return []


def _write_batch(writer: BatchWriter, batch: list[NormalizedItem], report: ImportReport, *, write: bool) -> None:
    if not batch:
        return
    existing = writer.existing([item.external_id for item in batch])
    fresh = [item for item in batch if item.external_id not in existing]
    report.skipped_existing += len(batch) - len(fresh)
    report.imported += len(fresh)
    if not write or not fresh:
        return
    writer.write(fresh)
