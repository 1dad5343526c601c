"""PostgreSQL: a project's judgments, judged items and their responses as three Arrow streams in item order.

Each stream is one plain statement that PostgreSQL answers from an index in item order (no
per-batch statements, no aggregation, no JSON functions: those were most of the server's
time). Outside a transaction, each is read by the ADBC PostgreSQL driver, which turns
PostgreSQL's binary COPY into Arrow columns in C, on its own connection and in its own thread,
so the server's three backends and the export's Python share both cores. The three connections
read one snapshot (`pg_export_snapshot`, as `pg_dump --jobs` does), so they agree as one
statement would. Inside a transaction (the caller's uncommitted rows are visible only on its
own connection) the same statements are read through Django's connection instead.

`aligned` cuts the three streams into chunks that hold every judgment, item and response of
their items, in item order.
"""

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection

from labeling.models import Item, Judgment, Response

Prepare = Callable[[pa.RecordBatch], pa.RecordBatch]
STREAM_BATCH_BYTES = 4 << 20  # the size of the record batches the driver hands out
STREAM_QUEUE = 3  # batches read ahead per stream
CURSOR_ROWS = 10_000  # rows per fetch when reading through Django's connection (here and in `reading`)

_J, _I, _R = Judgment._meta.db_table, Item._meta.db_table, Response._meta.db_table
# PROJECT and GOLD are filled in by `statements`.
# `id` last: judgments of one item made at the same instant come out in one order in every run.
JUDGMENTS = (
    f"SELECT j.item_id AS item_pk, j.strength, j.ranking::text AS ranking FROM {_J} AS j"  # noqa: S608
    " WHERE j.project_id = PROJECT ORDER BY j.item_id, j.created_at, j.id"
)
# The prompt as one line of JSON Lines, the input of `reading._messages` as it is.
ITEMS = (
    "SELECT i.id AS item_pk, i.external_id, '{\"p\":' || i.prompt::text || E'}\\n' AS prompt"  # noqa: S608
    f" FROM {_I} AS i WHERE i.project_id = PROJECT GOLD"
    f" AND EXISTS (SELECT FROM {_J} AS j WHERE j.project_id = PROJECT AND j.item_id = i.id) ORDER BY i.id"
)
RESPONSES = (
    f"SELECT r.id, r.item_id AS item_pk, r.model, r.content FROM {_R} AS r"  # noqa: S608
    f" WHERE r.item_id IN (SELECT j.item_id FROM {_J} AS j WHERE j.project_id = PROJECT) ORDER BY r.item_id"
)
SCHEMAS = {
    "judgments": pa.schema([("item_pk", pa.int64()), ("strength", pa.int16()), ("ranking", pa.string())]),
    "items": pa.schema([("item_pk", pa.int64()), ("external_id", pa.string()), ("prompt", pa.string())]),
    "responses": pa.schema(
        [("id", pa.int64()), ("item_pk", pa.int64()), ("model", pa.string()), ("content", pa.string())]
    ),
}
# JIT compiles each statement for a fraction of a second and gains nothing on these; a parallel
# plan would merge worker outputs where one index scan already gives the order.
_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL max_parallel_workers_per_gather = 0")


def statements(*, project_id: int, include_gold: bool) -> dict[str, str]:
    """The three statements for a project, by stream name (`SCHEMAS`' keys).

    Only the items leave gold items out: a gold item's judgments and responses are few, and
    leaving them out in the other two statements made PostgreSQL scan every item of the
    project once more for each (there is no index on `is_gold`); the reader drops them.
    """
    gold = "" if include_gold else "AND NOT i.is_gold"
    found = {"judgments": JUDGMENTS, "items": ITEMS.replace("GOLD", gold), "responses": RESPONSES}
    return {name: statement.replace("PROJECT", str(int(project_id))) for name, statement in found.items()}


def aligned(
    *, project_id: int, include_gold: bool, rows: int, prepare: dict[str, Prepare] | None = None
) -> Iterator[dict[str, pa.Table]]:
    """Chunks of about `rows` judgments: {stream name: table} holding everything of the chunk's items.

    `prepare`: by stream name, what to do with each record batch as it arrives, in the stream's
    reading thread (work that then overlaps the rest of the export's); it keeps `item_pk`.
    """
    found = statements(project_id=project_id, include_gold=include_gold)
    prepared = {name: (prepare or {}).get(name, _as_read) for name in found}
    with _opened(found, prepared) as readers:
        streams = {name: _Sorted(readers[name], prepared[name](_empty(SCHEMAS[name])).schema) for name in found}
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
        keys = pa.chunked_array([part["item_pk"] for part in self._parts], pa.int64())
        bound = keys[rows].as_py()
        while bound == keys[0].as_py():  # one item fills `rows`: the chunk ends at the next item
            later = keys.filter(pc.greater(keys, bound))
            if len(later):
                return later[0].as_py()
            self._pull()
            if self._done:
                return None
            keys = pa.chunked_array([part["item_pk"] for part in self._parts], pa.int64())
        return bound

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


def _opened(found: dict[str, str], prepared: dict[str, Prepare]):
    if connection.in_atomic_block:
        return _DjangoConnection(found, prepared)
    return _OwnConnections(found, prepared)


class _DjangoConnection:
    """The statements read through Django's connection, one server-side cursor each (inside a transaction)."""

    def __init__(self, found: dict[str, str], prepared: dict[str, Prepare]) -> None:
        self._found = found
        self._prepared = prepared
        self._cursors = []

    def __enter__(self) -> dict[str, Iterator[pa.RecordBatch]]:
        # No `_SETTINGS` here: SET LOCAL would outlast the export in the caller's transaction.
        readers = {}
        for name, statement in self._found.items():
            cursor = connection.chunked_cursor()
            self._cursors.append(cursor)
            cursor.execute(statement)
            readers[name] = map(self._prepared[name], _fetched(cursor, SCHEMAS[name]))
        return readers

    def __exit__(self, *exc) -> None:
        for cursor in self._cursors:
            cursor.close()


def _fetched(cursor, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    while chunk := cursor.fetchmany(CURSOR_ROWS):
        yield pa.RecordBatch.from_arrays(
            [pa.array(column, field.type) for column, field in zip(zip(*chunk, strict=True), schema, strict=True)],
            schema=schema,
        )


class _OwnConnections:
    """Each statement on its own ADBC connection, read ahead by a thread; the three in one snapshot."""

    def __init__(self, found: dict[str, str], prepared: dict[str, Prepare]) -> None:
        self._found = found
        self._prepared = prepared
        self._connections = []
        self._threads = []
        self._stop = threading.Event()

    def __enter__(self) -> dict[str, Iterator[pa.RecordBatch]]:
        import adbc_driver_postgresql.dbapi  # loaded only by an export that reads this way

        conninfo = _conninfo()
        try:
            snapshot = None
            for _ in self._found:
                opened = adbc_driver_postgresql.dbapi.connect(conninfo, autocommit=True)
                self._connections.append(opened)
                with opened.cursor() as cursor:
                    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    if snapshot is None:
                        cursor.execute("SELECT pg_export_snapshot()")
                        snapshot = cursor.fetchone()[0]
                    else:
                        cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    for setting in _SETTINGS:
                        cursor.execute(setting)
            readers = {}
            for (name, statement), opened in zip(self._found.items(), self._connections, strict=True):
                batches: queue.Queue = queue.Queue(STREAM_QUEUE)
                thread = threading.Thread(
                    target=self._read, args=(opened, name, statement, batches), name=f"export-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
                readers[name] = self._received(batches)
            return readers
        except BaseException:
            self.__exit__()
            raise

    def _read(self, opened, name: str, statement: str, batches: queue.Queue) -> None:
        """The thread: every record batch of the statement, prepared, into `batches`; then None (or the error)."""
        schema, prepare = SCHEMAS[name], self._prepared[name]
        try:
            with opened.cursor() as cursor:
                cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(STREAM_BATCH_BYTES)})
                cursor.execute(statement)
                with cursor.fetch_record_batch() as reader:
                    for batch in reader:
                        # The statement's columns in order, without the driver's field metadata.
                        if not self._put(batches, prepare(pa.RecordBatch.from_arrays(batch.columns, schema=schema))):
                            return
            self._put(batches, None)
        except BaseException as error:  # handed to the reading thread, which raises it
            self._put(batches, error)

    def _put(self, batches: queue.Queue, value) -> bool:
        while not self._stop.is_set():
            try:
                batches.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    @staticmethod
    def _received(batches: queue.Queue) -> Iterator[pa.RecordBatch]:
        while (batch := batches.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            yield batch

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for opened in self._connections:
            opened.close()


def _conninfo() -> str:
    """Django's connection parameters as a libpq connection string (only the keywords libpq knows)."""
    from psycopg import pq
    from psycopg.conninfo import make_conninfo

    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    params = connection.get_connection_params()
    return make_conninfo(**{key: value for key, value in params.items() if key in known and value is not None})
