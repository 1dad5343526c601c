"""Read and check an import's rows into batches of items as the database stores them.

Reading a row (JSON or Arrow into a dict), checking it against its shape's rules and
encoding its values as the database stores them (JSON text) is about half of an
import's CPU time. `parse_batches` does it, in a process of its own for a large file or
in the importing thread for a small one (`process.parsed_batches` decides); either way
each batch is laid out as the data layer's `import_rows` says, for the statements that
write it.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_string
from operator import itemgetter
from pathlib import Path

from labeling.db.import_rows import ITEM, RESPONSE
from labeling.services.parsing.readers import BATCH_ROWS, RowError, read_rows
from labeling.services.parsing.shapes import NormalizedItem, NormalizedResponse, RowInvalid, detect_shape, normalize

__all__ = ["ImportReport", "ItemBatch", "Parsed", "parse_batches"]

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


_ITEM_WIDTH = ITEM.width
_EXTERNAL_ID = ITEM.offset("external_id")
_item_carried = itemgetter(*ITEM.carried)  # an item's stored values by column, in the layout's order
_response_carried = itemgetter(*RESPONSE.carried)


@dataclass
class ItemBatch:
    """Checked items and their responses, in two flat lists laid out as `import_rows.ITEM` and
    `RESPONSE` say: each row is its item's index in the batch, then its values as the
    database stores them (`_stored_item`, `_stored_response`, by column name)."""

    items: list = field(default_factory=list)
    responses: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items) // _ITEM_WIDTH

    def add(self, item: NormalizedItem) -> None:
        index = len(self)
        self.items.append(index)
        self.items += _item_carried(_stored_item(item))
        for position, response in enumerate(item.responses):
            self.responses.append(index)
            self.responses += _response_carried(_stored_response(position, response))

    def external_ids(self) -> list[str]:
        return self.items[_EXTERNAL_ID::_ITEM_WIDTH]

    def without(self, external_ids: set[str]) -> "ItemBatch":
        """The batch less the items with these external ids (and their responses), renumbered."""
        kept, renumbered = ItemBatch(), {}
        for index, *values in ITEM.rows(self.items):
            if values[_EXTERNAL_ID - 1] not in external_ids:
                renumbered[index] = len(kept)
                kept.items += (len(kept), *values)
        for index, *values in RESPONSE.rows(self.responses):
            if index in renumbered:
                kept.responses += (renumbered[index], *values)
        return kept


def _stored_item(item: NormalizedItem) -> dict[str, object]:
    """The item's columns as the database stores them (JSON as `json.dumps` text, as Django does)."""
    return {
        "external_id": item.external_id,
        "prompt": _prompt_json(item.prompt),
        "metadata": _json_object(item.metadata),
        "reference": None if item.reference is None else json.dumps(item.reference),
        "is_gold": item.gold_answer is not None,
        "gold_answer": None if item.gold_answer is None else json.dumps(item.gold_answer),
    }


def _stored_response(position: int, response: NormalizedResponse) -> dict[str, object]:
    return {
        "position": position,
        "model": response.model,
        "content": response.content,
        "metadata": _json_object(response.metadata),
    }


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
