"""The export's statements read as Arrow record batches, each in `SCHEMAS`' types, on either database.

Outside a transaction, each statement is read by an ADBC driver on its own connection and in its
own thread, so the database's work and the export's Python share both cores: on PostgreSQL the
ADBC PostgreSQL driver, which turns binary COPY into Arrow columns in C; on SQLite the ADBC
SQLite driver, which reads the database file (a second connection, as any reader of the file)
into Arrow columns in C, in a process of its own (`export_sqlite_process`). The connections
read one snapshot, so they agree as one statement would: on PostgreSQL `pg_export_snapshot` (as
`pg_dump --jobs` does); on SQLite each starts its read transaction while another holds the
write lock, so no write commits between them. Inside a transaction (the caller's uncommitted
rows are visible only on its own connection), and for an in-memory SQLite database (no other
connection sees it), the same statements are read through Django's connection instead.
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
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection
from django.db.backends.utils import CursorWrapper

if TYPE_CHECKING:
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

Prepare = Callable[[pa.RecordBatch], pa.RecordBatch]
STREAM_BATCH_BYTES = 4 << 20  # the size of the record batches the PostgreSQL driver hands out
STREAM_BATCH_ROWS = 16_384  # the rows of the record batches the SQLite driver hands out
PIPE_BYTES = 1 << 20  # the buffer of each pipe from SQLite's reading process (Linux's default limit)
STREAM_QUEUE = 3  # batches read ahead per stream
CURSOR_ROWS = 10_000  # rows per fetch when reading through Django's connection
# JIT compiles each statement for a fraction of a second and gains nothing on these; a parallel
# plan would merge worker outputs where one index scan already gives the order.
_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL max_parallel_workers_per_gather = 0")


def opened(found: dict, prepared: dict[str, Prepare]):
    """A context manager giving, by stream name, an iterator of each statement's prepared record batches.

    `found`: by stream name, a `export.Statement` (SQL and Arrow schema).
    """
    if connection.in_atomic_block:
        return _DjangoConnection(found, prepared)
    if connection.vendor == "sqlite":
        uri = _sqlite_uri()
        return _DjangoConnection(found, prepared) if uri is None else _SQLiteProcess(found, prepared, uri)
    return _OwnConnections(found, prepared)


def as_schema(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The statement's columns in order as `schema`'s types, without the driver's field metadata.

    The SQLite driver types each column from its first rows (an integer column as int64, a
    boolean as an integer); a float that may be NULL comes from SQLite as text, '' for NULL.
    """
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        if pa.types.is_string(column.type) and pa.types.is_floating(field.type):
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class _DjangoConnection:
    """The statements read through Django's connection, one server-side cursor each (inside a transaction)."""

    def __init__(self, found: dict, prepared: dict[str, Prepare]) -> None:
        self._found = found
        self._prepared = prepared
        self._cursors: list[CursorWrapper] = []

    def __enter__(self) -> dict[str, Iterator[pa.RecordBatch]]:
        # No `_SETTINGS` here: SET LOCAL would outlast the export in the caller's transaction.
        readers: dict[str, Iterator[pa.RecordBatch]] = {}
        for name, (statement, schema) in self._found.items():
            cursor = connection.chunked_cursor()
            self._cursors.append(cursor)
            cursor.execute(statement)
            readers[name] = map(self._prepared[name], _fetched(cursor, schema))
        return readers

    def __exit__(self, *exc) -> None:
        for cursor in self._cursors:
            cursor.close()


def _fetched(cursor, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    while chunk := cursor.fetchmany(CURSOR_ROWS):
        yield as_schema(
            pa.RecordBatch.from_arrays(
                [_array(column, field.type) for column, field in zip(zip(*chunk, strict=True), schema, strict=True)],
                names=schema.names,
            ),
            schema,
        )


def _array(values: tuple, arrow_type: pa.DataType) -> pa.Array:
    """Python values as `arrow_type`, or as the type Arrow finds for `as_schema` to convert
    (SQLite's 0 and 1 for booleans, its text for a float)."""
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(values)


class _ReadAhead:
    """Each stream's record batches read ahead by a thread of its own into a queue."""

    def __init__(self, found: dict, prepared: dict[str, Prepare]) -> None:
        self._found = found
        self._prepared = prepared
        self._threads: list[threading.Thread] = []
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
        schema, prepare = self._found[name].schema, self._prepared[name]
        try:
            for batch in source():
                if not self._put(batches, prepare(as_schema(batch, schema))):
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
    """PostgreSQL: each statement on its own ADBC connection, read ahead by a thread; all in one snapshot."""

    def __init__(self, found: dict, prepared: dict[str, Prepare]) -> None:
        super().__init__(found, prepared)
        self._connections: list[Any] = []  # ADBC connections (the PostgreSQL driver is untyped)

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
            name: functools.partial(self._batches, opened, statement.sql)
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
    """SQLite: the statements read by the ADBC SQLite driver in a process of its own (`export_sqlite_process`),
    each on its own connection, in one snapshot; their record batches come back through a pipe each.

    Not in this process: the driver carries its own copy of SQLite, and two copies in one process
    that open the same database file clear each other's POSIX locks when either closes the file
    (https://www.sqlite.org/howtocorrupt.html, "Multiple copies of SQLite linked into the same
    application"), which can corrupt it while Django's connections write.
    """

    def __init__(self, found: dict, prepared: dict[str, Prepare], uri: str) -> None:
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
                "statements": [[statement.sql, pipes[name][1]] for name, statement in self._found.items()],
            }
            self._process = subprocess.Popen(  # noqa: S603 (this interpreter, a file of this package)
                [sys.executable, "-I", str(Path(__file__).with_name("export_sqlite_process.py"))],
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
    if cast("SQLiteDatabaseWrapper", connection).is_in_memory_db():  # the caller checked the vendor
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
