"""SQLite's streams outside a transaction: read by the ADBC SQLite driver in a process of its
own, one connection each, in one snapshot, from the database file (here a copy of the test
database, which is in memory and so seen by no other connection), for every config."""

import sqlite3
import threading
from contextlib import closing

import pytest
from django.db import connection

from labeling.db import export as db_export
from labeling.db import export_readers
from labeling.services.exporting import preferences_export, reading, rows
from tests.services.exporting.test_golden_rows import CASES, PAIRWISE, RANKING, assert_golden, build, watch


@pytest.fixture
def on_file(transactional_db, tmp_path_factory, monkeypatch):
    """The golden projects, committed and copied to a database file that the export reads."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's reading process")
    projects = {"pairwise": build("golden", "pairwise", PAIRWISE), "ranking": build("ranked", "ranking", RANKING)}
    path = tmp_path_factory.mktemp("database") / "db.sqlite3"
    connection.ensure_connection()
    with closing(sqlite3.connect(path)) as copy:
        connection.connection.backup(copy)
    monkeypatch.setattr(export_readers, "_sqlite_uri", path.as_uri)
    return projects, path


@pytest.mark.parametrize(
    ("batch", "stream_rows"), [(reading.CHUNK_JUDGMENTS, export_readers.STREAM_BATCH_ROWS), (1, 1), (2, 1)]
)
def test_the_reading_process_gives_the_golden_rows(on_file, tmp_path, monkeypatch, batch, stream_rows):
    """Every config; chunks of 1 or 2 judgments and record batches of one row cut items' judgments apart every way."""
    projects, _ = on_file
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", batch)
    monkeypatch.setattr(export_readers, "STREAM_BATCH_ROWS", stream_rows)
    opened = watch(monkeypatch, export_readers, "_SQLiteProcess")

    assert not connection.in_atomic_block
    assert_golden(projects, tmp_path)
    assert len(opened) == len(CASES)


def test_a_write_committed_while_the_streams_are_read_is_not_seen(on_file, monkeypatch):
    """WAL: the connections keep the snapshot they started with, whatever commits after."""
    projects, path = on_file
    project, _ = projects["pairwise"]
    monkeypatch.setattr(export_readers, "STREAM_BATCH_ROWS", 1)
    monkeypatch.setattr(export_readers, "STREAM_QUEUE", 1)
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        before = [
            {name: table.to_pydict() for name, table in chunk.items()}
            for chunk in db_export.item_chunks(project_id=project.pk, include_gold=True, rows=1)
        ]
        chunks = db_export.item_chunks(project_id=project.pk, include_gold=True, rows=1)
        first = next(chunks)
        with other:
            other.execute("DELETE FROM labeling_response")
        during = [{name: table.to_pydict() for name, table in chunk.items()} for chunk in [first, *chunks]]
        after = list(db_export.item_chunks(project_id=project.pk, include_gold=True, rows=1))

    assert len(before) > 1 and during == before
    assert not any(chunk["responses"].num_rows for chunk in after)


def test_a_failed_statement_raises_with_the_database_error_and_leaves_nothing(on_file, tmp_path, monkeypatch):
    project, _ = on_file[0]["pairwise"]
    monkeypatch.setitem(db_export.TEXTS, "responses", db_export.RESPONSES.replace("r.model", "r.no_such_column"))

    with pytest.raises(RuntimeError, match="no_such_column"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_the_readers_wait_stops_the_process_and_leaves_nothing(on_file, tmp_path, monkeypatch):
    """The export fails in its own thread while the reading threads are blocked on full queues."""
    project, _ = on_file[0]["pairwise"]
    monkeypatch.setattr(export_readers, "STREAM_QUEUE", 1)
    monkeypatch.setattr(export_readers, "STREAM_BATCH_ROWS", 1)  # a record batch per row: the queues fill at once
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", 1)
    opened = watch(monkeypatch, export_readers, "_SQLiteProcess")

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(rows, "one_vote_rows", broken)

    with pytest.raises(OSError, match="No space left"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert not [thread for thread in threading.enumerate() if thread.name.startswith("export-")]
    assert list(tmp_path.iterdir()) == []
    assert len(opened) == 1 and opened[0]._process.returncode is not None


def test_an_in_memory_database_is_read_through_djangos_connection(transactional_db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's in-memory test database")
    assert connection.is_in_memory_db() and export_readers._sqlite_uri() is None
    assert isinstance(export_readers.opened({}, {}), export_readers._DjangoConnection)
