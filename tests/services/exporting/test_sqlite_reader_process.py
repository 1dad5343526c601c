"""SQLite's three streams outside a transaction: read by the ADBC SQLite driver in a process of its
own, one connection each, in one snapshot, from the database file (here a copy of the test
database, which is in memory and so seen by no other connection)."""

import json
import sqlite3
import threading
from contextlib import closing

import pytest
from django.db import connection

from labeling.services.exporting import columnar, preferences_export, reading, streams
from tests.services.test_exporting_golden import CASES, GOLDEN, PAIRWISE, RANKING, build, snapshot

DEFAULT_CASES = [case for case in CASES if "raw" not in case and "unpaired" not in case]


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
    monkeypatch.setattr(streams, "_sqlite_uri", path.as_uri)
    return projects, path


def watch(monkeypatch) -> list:
    opened = []
    process = streams._SQLiteProcess

    def watched(*args):
        opened.append(args)
        return process(*args)

    monkeypatch.setattr(streams, "_SQLiteProcess", watched)
    return opened


@pytest.mark.parametrize(("batch", "stream_rows"), [(reading.PAIR_BATCH, streams.STREAM_BATCH_ROWS), (1, 1), (2, 1)])
def test_the_reading_process_gives_the_golden_rows(on_file, tmp_path, monkeypatch, batch, stream_rows):
    """Batches of 1 or 2 judgments and record batches of one row cut items' judgments apart in every way."""
    projects, _ = on_file
    monkeypatch.setattr(reading, "PAIR_BATCH", batch)
    monkeypatch.setattr(streams, "STREAM_BATCH_ROWS", stream_rows)
    opened = watch(monkeypatch)
    expected = json.loads(GOLDEN.read_text())

    assert not connection.in_atomic_block
    for case in DEFAULT_CASES:
        kind, options = CASES[case]
        project, names = projects[kind]
        got = snapshot(project, names, tmp_path / case, options)
        assert json.loads(json.dumps(got, sort_keys=True)) == expected[case], case
    assert len(opened) == len(DEFAULT_CASES)


def test_a_write_committed_while_the_streams_are_read_is_not_seen(on_file, monkeypatch):
    """WAL: the three connections keep the snapshot they started with, whatever commits after."""
    projects, path = on_file
    project, _ = projects["pairwise"]
    monkeypatch.setattr(streams, "STREAM_BATCH_ROWS", 1)
    monkeypatch.setattr(streams, "STREAM_QUEUE", 1)
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        before = [
            {name: table.to_pydict() for name, table in chunk.items()}
            for chunk in streams.aligned(project_id=project.pk, include_gold=True, rows=1)
        ]
        chunks = streams.aligned(project_id=project.pk, include_gold=True, rows=1)
        first = next(chunks)
        with other:
            other.execute("DELETE FROM labeling_response")
        during = [{name: table.to_pydict() for name, table in chunk.items()} for chunk in [first, *chunks]]
        after = list(streams.aligned(project_id=project.pk, include_gold=True, rows=1))

    assert len(before) > 1 and during == before
    assert not any(chunk["responses"].num_rows for chunk in after)


def test_a_failed_statement_raises_with_the_database_error_and_leaves_nothing(on_file, tmp_path, monkeypatch):
    project, _ = on_file[0]["pairwise"]
    monkeypatch.setattr(streams, "RESPONSES", streams.RESPONSES.replace("r.model", "r.no_such_column"))

    with pytest.raises(RuntimeError, match="no_such_column"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_the_readers_wait_stops_the_process_and_leaves_nothing(on_file, tmp_path, monkeypatch):
    """The export fails in its own thread while the reading threads are blocked on full queues."""
    project, _ = on_file[0]["pairwise"]
    monkeypatch.setattr(streams, "STREAM_QUEUE", 1)
    monkeypatch.setattr(streams, "STREAM_BATCH_ROWS", 1)  # a record batch per row: the queues fill at once
    monkeypatch.setattr(reading, "PAIR_BATCH", 1)
    opened = []
    process = streams._SQLiteProcess

    def watched(*args):
        opened.append(process(*args))
        return opened[-1]

    monkeypatch.setattr(streams, "_SQLiteProcess", watched)

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(columnar, "one_vote_rows", broken)

    with pytest.raises(OSError, match="No space left"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert not [thread for thread in threading.enumerate() if thread.name.startswith("export-")]
    assert list(tmp_path.iterdir()) == []
    assert len(opened) == 1 and opened[0]._process.returncode is not None


def test_an_in_memory_database_is_read_through_djangos_connection(transactional_db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's in-memory test database")
    assert connection.is_in_memory_db() and streams._sqlite_uri() is None
