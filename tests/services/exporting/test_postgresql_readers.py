"""The export's reads and writes outside a transaction: PostgreSQL's streams on their own
connections (ADBC, one snapshot), cut into chunks of whole items, for every config; and the
`save_to_disk` layout written in place, in several shards."""

import json
import threading

import datasets
import pytest
from django.db import connection

from labeling.db import export as db_export
from labeling.db import export_readers
from labeling.services.exporting import preferences_export, reading, rows, saved
from tests.services.exporting.test_golden_rows import CASES, PAIRWISE, RANKING, assert_golden, build, watch


@pytest.fixture
def committed(transactional_db):
    """The golden projects, committed, so that connections other than Django's can read them."""
    if connection.vendor != "postgresql":
        pytest.skip("the streams are PostgreSQL's")
    return {"pairwise": build("golden", "pairwise", PAIRWISE), "ranking": build("ranked", "ranking", RANKING)}


@pytest.mark.parametrize(
    ("batch", "stream_bytes"), [(reading.CHUNK_JUDGMENTS, export_readers.STREAM_BATCH_BYTES), (1, 1), (2, 1)]
)
def test_own_connections_read_the_rows_of_the_snapshot(committed, tmp_path, monkeypatch, batch, stream_bytes):
    """Every config; chunks of 1 or 2 judgments and record batches of one row cut items' judgments apart every way."""
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", batch)
    monkeypatch.setattr(export_readers, "STREAM_BATCH_BYTES", stream_bytes)
    opened = watch(monkeypatch, export_readers, "_OwnConnections")

    assert not connection.in_atomic_block
    assert_golden(committed, tmp_path)
    assert len(opened) == len(CASES)


def test_a_project_without_judgments_reads_empty_streams(committed, tmp_path):
    project, _ = build("unjudged", "pairwise", {})

    report = preferences_export(project=project, out_dir=tmp_path / "out")

    assert report.rows == {"train": 0}
    train = datasets.load_from_disk(str(tmp_path / "out"))["train"]
    assert train.num_rows == 0 and train.column_names[:3] == ["prompt", "chosen", "rejected"]


def test_a_failed_statement_raises_and_leaves_nothing(committed, tmp_path, monkeypatch):
    project, _ = committed["pairwise"]
    monkeypatch.setitem(db_export.TEXTS, "responses", db_export.RESPONSES.replace("r.model", "r.no_such_column"))

    with pytest.raises(Exception, match="no_such_column"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_the_readers_wait_stops_them_and_leaves_nothing(committed, tmp_path, monkeypatch):
    """The export fails in its own thread while the reading threads are blocked on full queues."""
    project, _ = committed["pairwise"]
    monkeypatch.setattr(export_readers, "STREAM_QUEUE", 1)
    monkeypatch.setattr(export_readers, "STREAM_BATCH_BYTES", 1)  # a record batch per row: the queues fill at once
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", 1)

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(rows, "one_vote_rows", broken)

    with pytest.raises(OSError, match="No space left"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert not [thread for thread in threading.enumerate() if thread.name.startswith("export-")]
    assert list(tmp_path.iterdir()) == []


def test_splits_past_the_shard_size_are_written_in_shards_load_from_disk_reads_in_order(db, tmp_path, monkeypatch):
    project, names = build("sharded", "pairwise", PAIRWISE)
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", 1)
    monkeypatch.setattr(saved, "MAX_SHARD_BYTES", 1)  # a shard per chunk
    assert_golden({"pairwise": (project, names)}, tmp_path, ["default-gold-test-split"])

    out = tmp_path / "default-gold-test-split" / "train"
    state = json.loads((out / "state.json").read_text())
    shards = [entry["filename"] for entry in state["_data_files"]]
    assert len(shards) > 1
    assert shards == [f"data-{index:05d}-of-{len(shards):05d}.arrow" for index in range(len(shards))]
    assert sorted(path.name for path in out.glob("*.arrow")) == shards


def test_an_empty_split_is_one_shard_with_every_column(tmp_path):
    schema = datasets.Features({"item_id": datasets.Value("string")}).arrow_schema
    part = saved.SavedSplit(tmp_path / "train", schema, "train")
    part.finish(datasets.DatasetInfo(features=datasets.Features({"item_id": datasets.Value("string")})))
    saved.dict_finish(tmp_path, ["train"])

    loaded = datasets.load_from_disk(str(tmp_path))

    assert loaded["train"].num_rows == 0 and loaded["train"].column_names == ["item_id"]
