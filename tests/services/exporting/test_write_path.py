"""The columnar write path's own promises: what datasets records beside the rows, the garbage
collector handed back, empty splits, and chunks that cut through a project."""

import gc
import json

import datasets
import pytest

from labeling.db import export_readers
from labeling.services.exporting import ExportOptions, preferences_export, reading, rows
from tests.services.exporting.test_golden_rows import PAIRWISE as PLAN
from tests.services.exporting.test_golden_rows import assert_golden, build


@pytest.fixture
def judged(db):
    return build("columnar", "pairwise", PLAN)


def test_dataset_info_keeps_the_keys_from_generator_wrote(judged, tmp_path):
    project, _ = judged
    preferences_export(project=project, out_dir=tmp_path / "out", options=ExportOptions(test_size=0.4, seed=7))

    for split in ("train", "test"):
        info = json.loads((tmp_path / "out" / split / "dataset_info.json").read_text())
        assert (info["builder_name"], info["config_name"], info["version"]["version_str"]) == (
            "generator",
            "default",
            "0.0.0",
        )
        rows = datasets.load_from_disk(str(tmp_path / "out" / split)).num_rows
        assert info["splits"][split]["num_examples"] == rows
        assert info["dataset_size"] == info["splits"][split]["num_bytes"] > 0


def test_the_garbage_collector_gets_every_object_back(judged, tmp_path, monkeypatch):
    project, _ = judged
    frozen = gc.get_freeze_count()

    preferences_export(project=project, out_dir=tmp_path / "ok")
    assert gc.get_freeze_count() == frozen

    def broken(**kwargs):  # the read fails after the export has frozen the older objects
        assert gc.get_freeze_count() > frozen
        raise RuntimeError("the database went away")
        yield

    monkeypatch.setattr(rows, "chunks", broken)
    with pytest.raises(RuntimeError, match="went away"):
        preferences_export(project=project, out_dir=tmp_path / "failed")

    assert gc.get_freeze_count() == frozen


def test_chunks_of_one_item_give_the_same_rows(judged, tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", 1)
    monkeypatch.setattr(export_readers, "CURSOR_ROWS", 2)

    assert_golden({"pairwise": judged}, tmp_path, ["default-all-margin", "raw-gold-test-split", "unpaired"])


def test_a_project_without_judgments_writes_empty_splits_with_every_column(db, tmp_path):
    project, _ = build("empty", "pairwise", {})

    report = preferences_export(project=project, out_dir=tmp_path / "out", options=ExportOptions(config="raw"))

    assert report.rows == {"train": 0}
    train = datasets.load_from_disk(str(tmp_path / "out"))["train"]
    assert train.num_rows == 0 and "shown_order" in train.column_names


@pytest.mark.parametrize("size", [2, 3])
def test_chunks_mixing_one_vote_and_other_items_give_the_same_rows(judged, tmp_path, monkeypatch, size):
    """One-vote items are built by Arrow and the others by the general path, then merged in item order."""
    monkeypatch.setattr(reading, "CHUNK_JUDGMENTS", size)
    monkeypatch.setattr(export_readers, "CURSOR_ROWS", 1)
    batches = []
    read_chunks = rows.chunks

    def counted(**kwargs):
        for chunk in read_chunks(**kwargs):
            batches.append(chunk)
            yield chunk

    monkeypatch.setattr(rows, "chunks", counted)

    assert_golden({"pairwise": judged}, tmp_path, ["default", "default-standard-margin", "default-gold-test-split"])
    assert len(batches) > 3
