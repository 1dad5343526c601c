"""A project's judgments, judged items and their responses as three Arrow streams in item order.

Each stream is one plain statement that the database answers from an index in item order (no
per-batch statements, no aggregation, no JSON functions: those were most of PostgreSQL's
time), the same on both databases but for a few spellings (`DIALECTS`). Outside a transaction,
each is read by an ADBC driver on its own connection and in its own thread, so the database's
work and the export's Python share both cores: on PostgreSQL the ADBC PostgreSQL driver, which
turns binary COPY into Arrow columns in C; on SQLite the ADBC SQLite driver, which reads the
database file (a second connection, as any reader of the file) into Arrow columns in C. The
three connections read one snapshot, so they agree as one statement would: on PostgreSQL
`pg_export_snapshot` (as `pg_dump --jobs` does); on SQLite each starts its read transaction
while a fourth holds the write lock, so no write commits between them. Inside a transaction
(the caller's uncommitted rows are visible only on its own connection), and for an in-memory
SQLite database (no other connection sees it), the same statements are read through Django's
connection instead.

`aligned` cuts the three streams into chunks that hold every judgment, item and response of
their items, in item order.
"""

import contextlib
import fcntl
import functools
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection

from labeling.models import Item, Judgment, Response

Prepare = Callable[[pa.RecordBatch], pa.RecordBatch]
STREAM_BATCH_BYTES = 4 << 20  # the size of the record batches the PostgreSQL driver hands out
STREAM_BATCH_ROWS = 16_384  # the rows of the record batches the SQLite driver hands out
PIPE_BYTES = 1 << 20  # the buffer of each pipe from SQLite's reading process (Linux's default limit)
STREAM_QUEUE = 3  # batches read ahead per stream
CURSOR_ROWS = 10_000  # rows per fetch when reading through Django's connection (here and in `reading`)

_J, _I, _R = Judgment._meta.db_table, Item._meta.db_table, Response._meta.db_table
# PROJECT and GOLD are filled in by `statements`, RANKING, PROMPT and NEWLINE from `DIALECTS`.
# `id` last: judgments of one item made at the same instant come out in one order in every run.
JUDGMENTS = (
    f"SELECT j.item_id AS item_pk, j.strength, RANKING AS ranking FROM {_J} AS j"  # noqa: S608
    " WHERE j.project_id = PROJECT ORDER BY j.item_id, j.created_at, j.id"
)
# The prompt as one line of JSON Lines, the input of `reading._messages` as it is.
ITEMS = (
    "SELECT i.id AS item_pk, i.external_id, '{\"p\":' || PROMPT || '}' || NEWLINE AS prompt"  # noqa: S608
    f" FROM {_I} AS i WHERE i.project_id = PROJECT GOLD"
    f" AND EXISTS (SELECT 1 FROM {_J} AS j WHERE j.project_id = PROJECT AND j.item_id = i.id) ORDER BY i.id"
)
RESPONSES = (
    f"SELECT r.id, r.item_id AS item_pk, r.model, r.content FROM {_R} AS r"  # noqa: S608
    f" WHERE r.item_id IN (SELECT j.item_id FROM {_J} AS j WHERE j.project_id = PROJECT) ORDER BY r.item_id"
)
# The JSON columns as text: PostgreSQL writes jsonb in one canonical form on one line; SQLite keeps the
# text Django wrote (`json.dumps`: one line too), whose line breaks, if any, can only be whitespace.
DIALECTS = {
    "postgresql": {"RANKING": "j.ranking::text", "PROMPT": "i.prompt::text", "NEWLINE": "chr(10)"},
    "sqlite": {
        "RANKING": "j.ranking",
        "PROMPT": "replace(replace(i.prompt, char(13), ' '), char(10), ' ')",
        "NEWLINE": "char(10)",
    },
}
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


def statements(*, project_id: int, include_gold: bool, vendor: str | None = None) -> dict[str, str]:
    """The three statements for a project, by stream name (`SCHEMAS`' keys), in `vendor`'s SQL
    (Django's connection's by default).

    Only the items leave gold items out: a gold item's judgments and responses are few, and
    leaving them out in the other two statements made PostgreSQL scan every item of the
    project once more for each (there is no index on `is_gold`); the reader drops them.
    """
    gold = "" if include_gold else "AND NOT i.is_gold"
    found = {"judgments": JUDGMENTS, "items": ITEMS.replace("GOLD", gold), "responses": RESPONSES}
    spellings = {"PROJECT": str(int(project_id)), **DIALECTS[vendor or connection.vendor]}
    for name, statement in found.items():
        for word, spelled in spellings.items():
            statement = statement.replace(word, spelled)
        found[name] = statement
    return found


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
    if connection.vendor == "sqlite":
        uri = _sqlite_uri()
        return _DjangoConnection(found, prepared) if uri is None else _SQLiteProcess(found, prepared, uri)
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


def _as_schema(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The statement's columns in order as `schema`'s types, without the driver's field metadata.

    The SQLite driver types each column from its first rows (an integer column as int64).
    """
    columns = [
        column if column.type == field.type else column.cast(field.type)
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _ReadAhead:
    """Each stream's record batches read ahead by a thread of its own into a queue."""

    def __init__(self, found: dict[str, str], prepared: dict[str, Prepare]) -> None:
        self._found = found
        self._prepared = prepared
        self._threads = []
        self._stop = threading.Event()

    def _sources(self) -> dict[str, Callable[[], Iterator[pa.RecordBatch]]]:
        """By stream name, what its thread calls for the stream's record batches."""
        raise NotImplementedError

    def _stopping(self) -> None:
        """Before the threads are joined: whatever makes a blocked read end."""

    def _closed(self) -> None:
        """After the threads are joined: close what `_sources` opened."""

    def __enter__(self) -> dict[str, Iterator[pa.RecordBatch]]:
        try:
            readers = {}
            for name, source in self._sources().items():
                batches: queue.Queue = queue.Queue(STREAM_QUEUE)
                thread = threading.Thread(
                    target=self._read, args=(name, source, batches), name=f"export-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
                readers[name] = self._received(batches)
            return readers
        except BaseException:
            self.__exit__()
            raise

    def _read(self, name: str, source, batches: queue.Queue) -> None:
        """The thread: every record batch of the stream, prepared, into `batches`; then None (or the error)."""
        schema, prepare = SCHEMAS[name], self._prepared[name]
        try:
            for batch in source():
                if not self._put(batches, prepare(_as_schema(batch, schema))):
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
        self._stopping()
        for thread in self._threads:
            thread.join()
        self._closed()


class _OwnConnections(_ReadAhead):
    """PostgreSQL: each statement on its own ADBC connection, read ahead by a thread; the three in one snapshot."""

    def __init__(self, found: dict[str, str], prepared: dict[str, Prepare]) -> None:
        super().__init__(found, prepared)
        self._connections = []

    def _sources(self):
        import adbc_driver_postgresql.dbapi  # loaded only by an export that reads this way

        conninfo = _conninfo()
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
        return {
            name: functools.partial(self._batches, opened, statement)
            for (name, statement), opened in zip(self._found.items(), self._connections, strict=True)
        }

    @staticmethod
    def _batches(opened, statement: str) -> Iterator[pa.RecordBatch]:
        with opened.cursor() as cursor:
            cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(STREAM_BATCH_BYTES)})
            cursor.execute(statement)
            with cursor.fetch_record_batch() as reader:
                yield from reader

    def _closed(self) -> None:
        for opened in self._connections:
            opened.close()


class _SQLiteProcess(_ReadAhead):
    """SQLite: the statements read by the ADBC SQLite driver in a process of its own (`sqlite_process`),
    each on its own connection, in one snapshot; their record batches come back through a pipe each.

    Not in this process: the driver carries its own copy of SQLite, and two copies in one process
    that open the same database file clear each other's POSIX locks when either closes the file
    (https://www.sqlite.org/howtocorrupt.html, "Multiple copies of SQLite linked into the same
    application"), which can corrupt it while Django's connections write.
    """

    def __init__(self, found: dict[str, str], prepared: dict[str, Prepare], uri: str) -> None:
        super().__init__(found, prepared)
        self._uri = uri
        self._process: subprocess.Popen | None = None
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by `_closed`)

    def _sources(self):
        pipes = {name: os.pipe() for name in self._found}
        try:
            for _, written in pipes.values():  # fewer, larger copies between the processes (Linux)
                with contextlib.suppress(AttributeError, OSError):
                    fcntl.fcntl(written, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            job = {
                "uri": self._uri,
                "timeout_ms": int(float(connection.settings_dict["OPTIONS"].get("timeout", 5)) * 1000),
                "batch_rows": STREAM_BATCH_ROWS,
                "statements": [[statement, pipes[name][1]] for name, statement in self._found.items()],
            }
            self._process = subprocess.Popen(  # noqa: S603 (this interpreter, a file of this package)
                [sys.executable, "-I", str(Path(__file__).with_name("sqlite_process.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._errors,
                pass_fds=[written for _, written in pipes.values()],
            )
            with self._process.stdin as job_input:
                job_input.write(json.dumps(job).encode())
        except BaseException:
            for read, _ in pipes.values():
                os.close(read)
            raise
        finally:
            for _, written in pipes.values():
                os.close(written)
        return {name: functools.partial(self._batches, read) for name, (read, _) in pipes.items()}

    def _batches(self, read: int) -> Iterator[pa.RecordBatch]:
        with open(read, "rb") as pipe:
            try:
                with pa.ipc.open_stream(pipe) as reader:
                    yield from reader
            except (pa.ArrowInvalid, OSError) as error:  # the stream stopped short: the process says why
                raise RuntimeError(f"Reading the SQLite database failed: {self._failure()}") from error

    def _failure(self) -> str:
        if not self._stop.is_set() and self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)  # the process writes the error before it closes the stream
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "the reading process stopped"

    def _stopping(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def _closed(self) -> None:
        if self._process is not None:
            self._process.wait()
        self._errors.close()


def _sqlite_uri() -> str | None:
    """Django's SQLite database as a URI for another connection (Django opens its NAME as a URI too);
    None for an in-memory database, which no other connection sees."""
    if connection.is_in_memory_db():
        return None
    name = str(connection.settings_dict["NAME"])
    return name if name.startswith("file:") else Path(name).resolve().as_uri()


def _conninfo() -> str:
    """Django's connection parameters as a libpq connection string (only the keywords libpq knows)."""
    from psycopg import pq
    from psycopg.conninfo import make_conninfo

    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    params = connection.get_connection_params()
    return make_conninfo(**{key: value for key, value in params.items() if key in known and value is not None})
