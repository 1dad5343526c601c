"""The export's statements, both databases side by side, and the chunks of whole items they are read in.

Four plain statements, each answered from an index in item order (no per-batch statements, no
aggregation, no JSON functions: those were most of PostgreSQL's time): a project's judgments
(`JUDGMENTS` for the preference configs, `RAW_JUDGMENTS` with every column the raw config
writes), its judged items and their responses. They are one text with `{names}` that each
database spells its own way (`SPELLINGS`), so every column comes out as one Arrow type
(`SCHEMAS`) on both: JSON as text on one line, a judgment id as `str(uuid)`, a timestamp as
`datetime.isoformat()` of the value Django reads.

`item_chunks` reads a set of them as Arrow streams (`export_readers`) and cuts the streams into
chunks that hold every judgment, item and response of their items, in item order.
"""

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection

from labeling.db import export_readers
from labeling.models import Assignment, Item, Judgment, Response


class Statement(NamedTuple):
    sql: str
    schema: pa.Schema


TABLES = {
    "judgment": Judgment._meta.db_table,
    "assignment": Assignment._meta.db_table,
    "item": Item._meta.db_table,
    "response": Response._meta.db_table,
}
# `id` last: judgments of one item made at the same instant come out in one order in every run.
_IN_ITEM_ORDER = " WHERE j.project_id = {project} ORDER BY j.item_id, j.created_at, j.id"
# Templates of names and spellings only (`statement` fills them in); no value a user gave reaches them.
JUDGMENTS = "SELECT j.item_id AS item_pk, {ranking} AS ranking, j.strength FROM {judgment} AS j" + _IN_ITEM_ORDER  # noqa: S608
RAW_JUDGMENTS = (
    "SELECT j.item_id AS item_pk, {ranking} AS ranking, j.strength, {judgment_id} AS id, j.annotator_id,"  # noqa: S608
    " j.both_bad, j.rationale, {criteria} AS criteria, {seconds} AS seconds, j.late,"
    " {created_at} AS created_at, {updated_at} AS updated_at, {shown_order} AS shown_order"
    " FROM {judgment} AS j JOIN {assignment} AS a ON a.id = j.assignment_id" + _IN_ITEM_ORDER
)
# The prompt as one line of JSON Lines, `{"p": [...]}` and a newline: a JSON Lines reader's input as it is.
ITEMS = (
    "SELECT i.id AS item_pk, i.external_id, {prompt_line} AS prompt FROM {item} AS i"
    " WHERE i.project_id = {project}{gold}"
    " AND EXISTS (SELECT 1 FROM {judgment} AS j WHERE j.project_id = {project} AND j.item_id = i.id) ORDER BY i.id"
)
RESPONSES = (
    "SELECT r.id, r.item_id AS item_pk, r.model, r.content FROM {response} AS r"
    " WHERE r.item_id IN (SELECT j.item_id FROM {judgment} AS j WHERE j.project_id = {project}) ORDER BY r.item_id"
)


def _postgresql_iso(column: str) -> str:
    """`datetime.isoformat()` of a timestamptz in UTC: microseconds only when there are any."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN date_trunc('second', {utc}) = {utc}"
        f" THEN '' ELSE to_char({utc}, '.US') END || '+00:00'"
    )


def _sqlite_iso(column: str) -> str:
    """`datetime.isoformat()` of what Django reads from SQLite's text (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC):
    a fraction of fewer digits read as Django reads it (`.5` is 500000 microseconds), none when zero."""
    fraction = f"substr(substr({column}, 21, 6) || '00000', 1, 6)"
    return (
        f"replace(substr({column}, 1, 19), ' ', 'T') || CASE WHEN substr({column}, 20, 1) = '.'"
        f" AND rtrim(substr({column}, 21, 6), '0') <> '' THEN '.' || {fraction} ELSE '' END || '+00:00'"
    )


# PostgreSQL writes jsonb in one canonical form on one line; SQLite keeps the text Django wrote
# (`json.dumps`: one line too), whose line breaks, if any, can only be whitespace.
SPELLINGS = {
    "postgresql": {
        "ranking": "j.ranking::text",
        "prompt_line": "'{\"p\":' || i.prompt::text || '}' || chr(10)",
        "judgment_id": "j.id::text",
        "criteria": "j.criteria::text",
        "seconds": "j.seconds",
        "shown_order": "a.shown_order::text",
        "created_at": _postgresql_iso("j.created_at"),
        "updated_at": _postgresql_iso("j.updated_at"),
    },
    "sqlite": {
        "ranking": "j.ranking",
        "prompt_line": "'{\"p\":' || replace(replace(i.prompt, char(13), ' '), char(10), ' ') || '}' || char(10)",
        # Django stores a UUID as its 32 hex digits.
        "judgment_id": (
            "substr(j.id, 1, 8) || '-' || substr(j.id, 9, 4) || '-' || substr(j.id, 13, 4)"
            " || '-' || substr(j.id, 17, 4) || '-' || substr(j.id, 21)"
        ),
        "criteria": "j.criteria",
        # Text, '' for NULL (`export_readers.as_schema` reads it back): the SQLite driver types a column
        # from its first rows, and a column that starts with NULLs is taken for integers. 17 digits
        # (`!`: past SQLite's 16) give the double back exactly.
        "seconds": "CASE WHEN j.seconds IS NULL THEN '' ELSE printf('%!.17g', j.seconds) END",
        "shown_order": "a.shown_order",
        "created_at": _sqlite_iso("j.created_at"),
        "updated_at": _sqlite_iso("j.updated_at"),
    },
}
SCHEMAS = {
    "judgments": pa.schema([("item_pk", pa.int64()), ("ranking", pa.string()), ("strength", pa.int16())]),
    "raw_judgments": pa.schema(
        [
            ("item_pk", pa.int64()),
            ("ranking", pa.string()),
            ("strength", pa.int16()),
            ("id", pa.string()),
            ("annotator_id", pa.int64()),
            ("both_bad", pa.bool_()),
            ("rationale", pa.string()),
            ("criteria", pa.string()),
            ("seconds", pa.float64()),
            ("late", pa.bool_()),
            ("created_at", pa.string()),
            ("updated_at", pa.string()),
            ("shown_order", pa.string()),
        ]
    ),
    "items": pa.schema([("item_pk", pa.int64()), ("external_id", pa.string()), ("prompt", pa.string())]),
    "responses": pa.schema(
        [("id", pa.int64()), ("item_pk", pa.int64()), ("model", pa.string()), ("content", pa.string())]
    ),
}
TEXTS = {"judgments": JUDGMENTS, "raw_judgments": RAW_JUDGMENTS, "items": ITEMS, "responses": RESPONSES}


def statement(name: str, *, project_id: int, include_gold: bool = True, vendor: str | None = None) -> Statement:
    """One statement (`TEXTS`' keys) for a project, in `vendor`'s SQL (Django's connection's by default).

    Only the items leave gold items out: a gold item's judgments and responses are few, and
    leaving them out in the other statements made PostgreSQL scan every item of the project
    once more for each (there is no index on `is_gold`); the reader drops them.
    """
    gold = "" if include_gold else " AND NOT i.is_gold"
    spelled = {**TABLES, **SPELLINGS[vendor or connection.vendor], "project": int(project_id), "gold": gold}
    return Statement(TEXTS[name].format(**spelled), SCHEMAS[name])


def statements(*, project_id: int, include_gold: bool, raw: bool = False) -> dict[str, Statement]:
    """By stream name: the judgments (with the raw config's columns when `raw`), the items, the responses."""
    names = {"judgments": "raw_judgments" if raw else "judgments", "items": "items", "responses": "responses"}
    return {stream: statement(name, project_id=project_id, include_gold=include_gold) for stream, name in names.items()}


def item_chunks(
    *,
    project_id: int,
    include_gold: bool,
    rows: int,
    raw: bool = False,
    prepare: dict[str, export_readers.Prepare] | None = None,
) -> Iterator[dict[str, pa.Table]]:
    """Chunks of about `rows` judgments: {stream name: table} holding everything of the chunk's items.

    `prepare`: by stream name, what to do with each record batch as it arrives, in the stream's
    reading thread (work that then overlaps the rest of the export's); it keeps `item_pk`.
    """
    found = statements(project_id=project_id, include_gold=include_gold, raw=raw)
    prepared = {name: (prepare or {}).get(name, _as_read) for name in found}
    with export_readers.opened(found, prepared) as readers:
        streams = {name: _Sorted(readers[name], prepared[name](_empty(found[name].schema)).schema) for name in found}
        while True:
            bound = streams["judgments"].bound(rows)
            chunk = {name: stream.take_below(bound) for name, stream in streams.items()}
            if chunk["judgments"].num_rows:
                yield chunk
            if bound is None:
                return


def _as_read(batch: pa.RecordBatch) -> pa.RecordBatch:
    return batch


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], field.type) for field in schema], schema=schema)


class _Sorted:
    """A stream of record batches sorted by `item_pk`, cut at item boundaries."""

    def __init__(self, batches, schema: pa.Schema) -> None:
        self._batches = iter(batches)
        self._schema = schema
        self._parts: list[pa.RecordBatch] = []
        self._rows = 0
        self._done = False

    def _pull(self) -> None:
        batch = next(self._batches, None)
        if batch is None:
            self._done = True
        elif batch.num_rows:
            self._parts.append(batch)
            self._rows += batch.num_rows

    def _last(self) -> int:
        return self._parts[-1]["item_pk"][-1].as_py()

    def bound(self, rows: int) -> int | None:
        """The item id that ends the next chunk: below it about `rows` rows, whole items, all read;
        None when the rest of the stream is the chunk."""
        while not self._done and self._rows <= rows:
            self._pull()
        if self._done:
            return None
        keys = self._keys()
        bound = keys[rows].as_py()
        while bound == keys[0].as_py():  # one item fills `rows`: the chunk ends at the next item
            later = keys.filter(pc.greater(keys, bound))
            if len(later):
                return later[0].as_py()
            self._pull()
            if self._done:
                return None
            keys = self._keys()
        return bound

    def _keys(self) -> pa.ChunkedArray:
        return pa.chunked_array([part["item_pk"] for part in self._parts], pa.int64())

    def take_below(self, bound: int | None) -> pa.Table:
        """The rows of items below `bound` (every row left when None), read as far as needed."""
        while not self._done and (bound is None or not self._parts or self._last() < bound):
            self._pull()
        table = pa.Table.from_batches(self._parts, self._schema)
        cut = table.num_rows if bound is None else int(np.searchsorted(table["item_pk"].to_numpy(), bound))
        rest = table.slice(cut)
        self._parts = rest.to_batches()
        self._rows = rest.num_rows
        return table.slice(0, cut)
