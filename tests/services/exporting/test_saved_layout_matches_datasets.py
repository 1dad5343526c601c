"""`SavedSplit` writes what `Dataset.save_to_disk` writes: a `datasets` upgrade that changes the layout fails here."""

import json

import datasets

from labeling.services.exporting import saved


def _dataset() -> datasets.Dataset:
    features = datasets.Features(
        {
            "prompt": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "votes": datasets.Value("int32"),
        }
    )
    rows = {"prompt": [[{"role": "user", "content": f"Q{n}?"}] for n in range(5)], "votes": list(range(5))}
    return datasets.Dataset.from_dict(rows, features=features, split="train")


def _json(path) -> dict:
    return json.loads(path.read_text())


def test_a_saved_split_matches_save_to_disk(tmp_path):
    dataset = _dataset()
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(tmp_path / "theirs"))
    table = dataset.data.table

    ours = saved.SavedSplit(tmp_path / "ours" / "train", table.schema, "train", max_shard_bytes=table.nbytes)
    for start in range(0, table.num_rows, 2):
        ours.write(table.slice(start, 2))
    ours.finish(dataset.info)
    saved.finish_dict(tmp_path / "ours", ["train"])

    theirs_dir, ours_dir = tmp_path / "theirs", tmp_path / "ours"
    assert _json(ours_dir / "dataset_dict.json") == _json(theirs_dir / "dataset_dict.json")
    their_state, our_state = (_json(folder / "train" / "state.json") for folder in (theirs_dir, ours_dir))
    assert their_state.keys() == our_state.keys()
    for key in their_state.keys() - {"_fingerprint", "_data_files"}:
        assert our_state[key] == their_state[key], key
    assert [file["filename"] for file in our_state["_data_files"]] == ["data-00000-of-00001.arrow"]
    assert [file["filename"] for file in their_state["_data_files"]] == ["data-00000-of-00001.arrow"]
    assert _json(ours_dir / "train" / "dataset_info.json") == _json(theirs_dir / "train" / "dataset_info.json")

    loaded = datasets.load_from_disk(str(ours_dir))["train"]
    assert loaded.features == dataset.features
    assert loaded.to_list() == dataset.to_list()
