"""The SQLite export's reading process (`export_readers._SQLiteProcess`): run as a script, it imports no Django.

Reads a JSON job from stdin: the database `uri`, `timeout_ms` (SQLite's busy timeout),
`batch_rows` and `statements`, each [SQL, the file descriptor of a pipe]. Each statement is
read by the ADBC SQLite driver on its own connection, in its own thread, and written to its
pipe as an Arrow IPC stream. The connections read one snapshot: each starts its read
transaction while one more connection holds the write lock, so no write commits between them
(the lock is held only while they start). An error is written to stderr, last line first
said, before its stream closes.
"""

import contextlib
import json
import sys
import threading
import traceback

import adbc_driver_sqlite.dbapi
import pyarrow as pa


def main() -> None:
    job = json.loads(sys.stdin.read())
    gate = _connect(job)
    readers = []
    try:
        with gate.cursor() as cursor:
            cursor.execute("BEGIN IMMEDIATE")  # no write commits until every reader holds its snapshot
            for _ in job["statements"]:
                opened = _connect(job)
                readers.append(opened)
                with opened.cursor() as reading:
                    reading.execute("BEGIN")
                    reading.execute("SELECT count(*) FROM sqlite_master")  # the read transaction starts here
                    reading.fetchall()
            cursor.execute("ROLLBACK")
    except BaseException:
        _report()
        raise
    finally:
        gate.close()
    threads = [
        threading.Thread(target=_write, args=(opened, statement, written, job["batch_rows"]))
        for opened, (statement, written) in zip(readers, job["statements"], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for opened in readers:
        opened.close()


def _connect(job: dict):
    opened = adbc_driver_sqlite.dbapi.connect(job["uri"], autocommit=True)
    with opened.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {int(job['timeout_ms'])}")
        cursor.fetchall()
    return opened


def _write(opened, statement: str, written: int, batch_rows: int) -> None:
    sink = open(written, "wb")  # noqa: SIM115 (closed below, after an error is reported)
    try:
        with opened.cursor() as cursor:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(int(batch_rows))})
            cursor.execute(statement)
            with cursor.fetch_record_batch() as reader, pa.ipc.new_stream(sink, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
    except BrokenPipeError:  # the export stopped reading
        pass
    except BaseException:
        _report()
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


def _report() -> None:
    traceback.print_exc()
    sys.stderr.flush()


if __name__ == "__main__":
    main()
