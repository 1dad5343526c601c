"""Import items from files: every row validated, all or nothing.

`items_import` streams the file in batches inside one transaction. Any invalid row
rolls the whole import back (unless `skip_invalid`), so a failed import changes
nothing; rows whose external id the project already has are skipped and counted.
A large file is read and checked in a second process (`parsing`) while this one
writes the batches.
"""

from collections.abc import Callable
from pathlib import Path

from django.db import transaction

from labeling.db import sql
from labeling.models import Item, Project, Response
from labeling.services.errors import InvalidInput
from labeling.services.importing.writer import BatchWriter
from labeling.services.memory import older_objects_frozen
from labeling.services.parsing.batches import ImportReport, ItemBatch, Parsed
from labeling.services.parsing.process import parsed_batches

__all__ = ["ImportRejected", "ImportReport", "items_import"]

# An import of at least this many items refreshes the planner's statistics once it commits.
ANALYZE_MIN_ITEMS = 1000


class ImportRejected(InvalidInput):
    """Some rows are invalid; nothing was imported. `report` lists them."""

    def __init__(self, report: ImportReport):
        more = report.rejected_count - len(report.rejected)
        lines = [f"row {number}: {reason}" for number, reason in report.rejected]
        if more:
            lines.append(f"... and {more} more")
        if report.rows == 1 and report.rejected_count:
            summary = "The file's only row is invalid; nothing was imported."
        elif report.rejected_count >= report.rows:
            summary = f"None of the {report.rows} rows is valid; nothing was imported."
        else:
            summary = f"{report.rejected_count} of {report.rows} rows are invalid; nothing was imported."
        super().__init__(summary + "\n" + "\n".join(lines))
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
            with parsed_batches(path, fmt, skip_invalid=skip_invalid) as batches:
                _import_rows(project, batches, report, skip_invalid, progress, write=not dry_run)
            if report.rejected_count and (not skip_invalid or _no_valid_row(report)):
                raise _Rollback
            if dry_run:
                raise _Rollback
            if report.imported >= ANALYZE_MIN_ITEMS:
                # The first claims after a large import are planned from current statistics,
                # not from those of the project before it (see sql.tables_analyze).
                transaction.on_commit(lambda: sql.tables_analyze(Item, Response))
    except _Rollback:
        if report.rejected_count and (not skip_invalid or _no_valid_row(report)):
            report.imported = 0
            raise ImportRejected(report) from None
    if report.rows == 0:
        raise InvalidInput(f"'{Path(path).name}' holds no rows.")
    return report


def _no_valid_row(report: ImportReport) -> bool:
    """Every row was refused: even with `skip_invalid` such a file is refused, never "imported"."""
    return report.rows > 0 and report.rejected_count >= report.rows


def _import_rows(project, batches, report: ImportReport, skip_invalid: bool, progress, *, write: bool) -> None:
    with BatchWriter(project) as writer:
        for parsed in batches:
            _take_report(report, parsed)
            if progress and parsed.report.rows:
                writer.wait()  # the callback may use the database, which serves one command at a time
                progress(report.rows)
            _write_batch(writer, parsed.items, report, write=write and not (report.rejected_count and not skip_invalid))


def _take_report(report: ImportReport, parsed: Parsed) -> None:
    """What reading the file found so far: rows, shape, repeats and rejections (the parser's to count)."""
    found = parsed.report
    report.shape, report.rows, report.skipped_duplicate = found.shape, found.rows, found.skipped_duplicate
    report.rejected, report.rejected_count = found.rejected, found.rejected_count


def _write_batch(writer: BatchWriter, batch: ItemBatch, report: ImportReport, *, write: bool) -> None:
    if not batch:
        return
    existing = writer.existing(batch.external_ids())
    fresh = batch.without(existing) if existing else batch
    report.skipped_existing += len(batch) - len(fresh)
    report.imported += len(fresh)
    if not write or not fresh:
        return
    writer.write(fresh)
