"""Read and check an import's rows, in a process of its own when the file is large.

Reading a row (JSON or Arrow into a dict), checking it against its shape's rules and
encoding its values as the database stores them (JSON text) is about half of an
import's CPU time. Done in the interpreter that also hands the batches to the database,
both take turns at one GIL and the machine's second core sits mostly idle. For a large
file a second process does this part and sends each batch of checked items over a pipe,
while the importing process writes the batch before it.

Either way the same generator, `parse_batches`, produces the batches: in a child process
(`parsed_batches` decides) or in the caller's own thread for small files, where starting
a process would cost more than it saves.
"""

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_string
from pathlib import Path

from django.conf import settings

from labeling.services.parsing.readers import BATCH_ROWS, RowError, read_rows
from labeling.services.parsing.shapes import NormalizedItem, RowInvalid, detect_shape, fields, normalize

__all__ = ["ImportReport", "ItemBatch", "Parsed", "parse_batches", "parsed_batches"]

logger = logging.getLogger(__name__)

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


ITEM_VALUES = 6  # per item: its index in the batch, external_id, prompt, metadata, reference, gold_answer
RESPONSE_VALUES = 5  # per response: its item's index in the batch, position, model, content, metadata


@dataclass
class ItemBatch:
    """Checked items as their database columns hold them (JSON as `json.dumps` text, as Django
    stores it), in two flat lists of values, ITEM_VALUES per item and RESPONSE_VALUES per
    response. Flat, because that is what a multi-row INSERT binds, and because a list of
    strings crosses between processes at a fraction of the cost of a tuple per row; the
    database gives the ids, so a response names its item by the item's index in the batch."""

    items: list = field(default_factory=list)
    responses: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items) // ITEM_VALUES

    def add(self, item: NormalizedItem) -> None:
        index = len(self)
        self.items += (
            index,
            item.external_id,
            _prompt_json(item.prompt),
            _json_object(item.metadata),
            None if item.reference is None else json.dumps(item.reference),
            None if item.gold_answer is None else json.dumps(item.gold_answer),
        )
        for position, response in enumerate(item.responses):
            self.responses += (index, position, response.model, response.content, _json_object(response.metadata))

    def external_ids(self) -> list[str]:
        return self.items[1::ITEM_VALUES]

    def item_rows(self) -> Iterator[tuple]:
        """(index, external_id, prompt, metadata, reference, gold_answer) per item."""
        return zip(*[iter(self.items)] * ITEM_VALUES, strict=True)

    def response_rows(self) -> Iterator[tuple]:
        """(item index, position, model, content, metadata) per response."""
        return zip(*[iter(self.responses)] * RESPONSE_VALUES, strict=True)

    def without(self, external_ids: set[str]) -> "ItemBatch":
        """The batch less the items with these external ids (and their responses), renumbered."""
        kept, renumbered = ItemBatch(), {}
        for index, external_id, *values in self.item_rows():
            if external_id not in external_ids:
                renumbered[index] = len(kept)
                kept.items += (len(kept), external_id, *values)
        for index, *values in self.response_rows():
            if index in renumbered:
                kept.responses += (renumbered[index], *values)
        return kept


@dataclass
class Parsed:
    """One batch of checked items (at most BATCH_ROWS, first seen external id wins) and the file's report so far:
    rows read, shape, repeats skipped and rows rejected. The last batch carries the final report."""

    items: ItemBatch
    report: ImportReport


def parse_batches(path: Path | str, fmt: str = "auto", *, skip_invalid: bool = False) -> Iterator[Parsed]:
    """The file's checked items in batches, in file order; always at least one batch (the last holds the report).

    Once a row is rejected and `skip_invalid` is off nothing will be written, so later
    items are counted and checked but no longer collected.
    """
    report = ImportReport()
    seen: set[str] = set()
    batch = ItemBatch()
    for number, row in read_rows(Path(path), fmt):
        report.rows += 1
        keep = skip_invalid or not report.rejected_count
        for item in _normalize_row(number, row, report):
            if item.external_id in seen:
                report.skipped_duplicate += 1
            else:
                seen.add(item.external_id)
                if keep:
                    batch.add(item)
        if len(batch) >= BATCH_ROWS:
            yield Parsed(batch, _snapshot(report))
            batch = ItemBatch()
    yield Parsed(batch, report)


def _snapshot(report: ImportReport) -> ImportReport:
    return replace(report, rejected=list(report.rejected))


@contextmanager
def parsed_batches(path: Path | str, fmt: str = "auto", *, skip_invalid: bool = False) -> Iterator[Iterator[Parsed]]:
    """`parse_batches(...)`, run in a child process when the file is large.

    The child sends each batch as soon as it is checked and blocks while the pipe is
    full, so at most a batch or two wait in memory. An error reading the file is raised
    here as the child raised it; leaving the block early (the import failed) stops the
    child.
    """
    path = Path(path)
    least = settings.LABELING_IMPORT_PROCESS_MIN_BYTES  # smaller files: a process would cost more than it saves
    if least < 0 or _size(path) < least:
        yield parse_batches(path, fmt, skip_invalid=skip_invalid)
        return
    from labeling.services.parsing import process as parse_process  # here: that module imports this one

    try:
        receiver, process = parse_process.start(str(path), fmt, skip_invalid, fields.max_text_chars())
    except OSError as error:  # no processes left, say: parsing in this thread is slower, not wrong
        logger.warning("Parsing %s in the importing process: no child process (%s).", path.name, error)
        yield parse_batches(path, fmt, skip_invalid=skip_invalid)
        return
    try:
        yield _received(receiver, process)
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join()


def _received(receiver, process) -> Iterator[Parsed]:
    while True:
        try:
            message = receiver.recv()
        except (EOFError, OSError):
            # EOFError: the pipe closed between messages; OSError ("got end of file during
            # message"): the child died while sending one. Either way it is gone.
            process.join()
            raise RuntimeError(
                f"The import's parsing process stopped unexpectedly (exit code {process.exitcode}); "
                "nothing was imported."
            ) from None
        if message is None:  # the child's last word: everything was sent
            return
        if isinstance(message, BaseException):
            raise message
        yield message


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
        return os.path.getsize(path)
    except OSError:
        return 0  # missing: read_rows says so, in this thread


@lru_cache(maxsize=256)
def _shape_of_columns(columns: tuple) -> str:
    """`detect_shape`, remembered by the row's columns in order: the rows of a file share them."""
    return detect_shape(set(columns))


def _normalize_row(number: int, row: dict | RowError, report: ImportReport) -> list[NormalizedItem]:
    """The row's items (an OpenAssistant tree holds several), or none when it is invalid."""
    if isinstance(row, RowError):
        report.reject(number, row.reason)
        return []
    try:
        shape = _shape_of_columns(tuple(row))
        if report.shape is None:
            report.shape = shape
        elif shape != report.shape:
            raise RowInvalid(f"has the {shape} shape but earlier rows have the {report.shape} shape")
        return normalize(row, shape)
    except RowInvalid as error:
        report.reject(number, str(error))
        return []


def _prompt_json(prompt: list[dict]) -> str:
    """`json.dumps(prompt)`; a prompt of one message (most are) without the general encoder's
    overhead, which was half of building a row."""
    if len(prompt) == 1:
        message = prompt[0]
        if tuple(message) == ("role", "content") and type(message["content"]) is str and message["role"] == "user":
            return '[{"role": "user", "content": ' + _json_string(message["content"]) + "}]"
    return json.dumps(prompt)


def _json_object(value: dict) -> str:
    return json.dumps(value) if value else "{}"
