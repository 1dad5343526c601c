"""`SavedSplit` writes what `Dataset.save_to_disk` writes, under the datasets version requirements.txt pins;
under another version that writes another layout, an export fails before it writes anything."""

import json
import re
from pathlib import Path

import datasets
import pytest

from labeling.services.exporting import preferences_export, saved
from tests.services.exporting.test_golden_rows import PAIRWISE, build

REQUIREMENTS = Path(__file__).resolve().parents[3] / "requirements.txt"


def test_the_pinned_datasets_is_the_one_installed_and_the_one_the_layout_is_written_for():
    pinned = re.search(r"^datasets==(\S+)$", REQUIREMENTS.read_text(), re.MULTILINE)

    assert pinned and pinned.group(1) == saved.DATASETS_VERSION == datasets.__version__


def test_a_saved_split_matches_save_to_disk(tmp_path):
    assert saved.layout_differences(tmp_path) == []


def test_the_shard_size_is_save_to_disk_s():
    from datasets.utils.py_utils import convert_file_size_to_int  # datasets' own reading of its setting

    assert convert_file_size_to_int(datasets.config.MAX_SHARD_SIZE) == saved.MAX_SHARD_BYTES


def test_another_version_that_writes_the_same_layout_exports(db, tmp_path, monkeypatch):
    project, _ = build("same-layout", "pairwise", PAIRWISE)
    monkeypatch.setattr(datasets, "__version__", "99.0.0")

    report = preferences_export(project=project, out_dir=tmp_path / "out")

    assert datasets.load_from_disk(str(tmp_path / "out"))["train"].num_rows == report.rows["train"] > 0


def test_another_version_that_writes_another_layout_fails_loudly_and_writes_nothing(db, tmp_path, monkeypatch):
    """A stand-in for a future datasets whose `save_to_disk` records one more key in state.json."""
    project, _ = build("new-layout", "pairwise", PAIRWISE)
    monkeypatch.setattr(datasets, "__version__", "99.0.1")
    save_to_disk = datasets.Dataset.save_to_disk

    def newer(self, dataset_path, **kwargs):
        save_to_disk(self, dataset_path, **kwargs)
        state = Path(dataset_path) / datasets.config.DATASET_STATE_JSON_FILENAME
        state.write_text(json.dumps({**json.loads(state.read_text()), "_new_key": 1}))

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", newer)

    with pytest.raises(RuntimeError, match=r"datasets 99\.0\.1 is installed.*state\.json has the keys"):
        preferences_export(project=project, out_dir=tmp_path / "out")

    assert list(tmp_path.iterdir()) == []
