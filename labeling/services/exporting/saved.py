"""A split written straight in the layout `Dataset.save_to_disk` gives, so its rows are written once.

A pinned exception to "no library's private layout" (DESIGN.md, STYLE.md "Fast paths"): the
public way, rows to an Arrow file, `Dataset.from_file`, then `DatasetDict.save_to_disk`, writes
every byte a second time (docs/performance.md has the figures). `save_to_disk` copies a dataset
into Arrow stream shards `data-0000K-of-0000N.arrow` of at most datasets' MAX_SHARD_SIZE (500 MB)
each, beside `state.json` (the shards in order, the split) and `dataset_info.json`;
`load_from_disk` maps the shards `state.json` lists, in that order. Here the rows go to the
shards as they are built: a shard ends before the record batch that would take it past the
limit, and the shards are named once their count is known. `dataset_info.json` is written by
datasets' own public `DatasetInfo.write_to_directory`; `state.json` is the private part.

The layout is that of `DATASETS_VERSION`, which requirements.txt pins. Under any other version,
the first export of a process compares the layout with what the installed `save_to_disk` writes
(`layout_differences`, a few milliseconds) and raises rather than write a folder
`load_from_disk` might misread; `tests/services/exporting/test_saved_layout_matches_datasets.py` does the same
comparison under the pinned version.
"""

import functools
import json
import secrets
import tempfile
from pathlib import Path

import datasets
import pyarrow as pa
from datasets import config

DATASETS_VERSION = "5.2.0"
MAX_SHARD_BYTES = 500 * 10**6  # save_to_disk's default, `datasets.config.MAX_SHARD_SIZE` ("500MB")
# The state `save_to_disk` records for a dataset without a format (`Dataset.__dict__`'s keys).
_STATE: dict[str, object] = {
    "_format_columns": None,
    "_format_kwargs": {},
    "_format_type": None,
    "_output_all_columns": False,
}


class SavedSplit:
    """One split's folder: `write` record batches in order, then `finish` with the split's info."""

    def __init__(self, folder: Path, schema: pa.Schema, split: str, *, max_shard_bytes: int | None = None) -> None:
        self.folder = folder
        self.split = split
        self.rows = 0
        self.bytes = 0  # Arrow's size of the rows, as datasets counts a dataset's size
        self._schema = schema
        self._max_shard_bytes = max_shard_bytes or MAX_SHARD_BYTES
        self._shards: list[Path] = []
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._shard_bytes = 0
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, rows: pa.RecordBatch | pa.Table) -> None:
        size = rows.nbytes
        if self._writer is None or (self._shard_bytes and self._shard_bytes + size > self._max_shard_bytes):
            self._next_shard()
        assert self._writer is not None  # _next_shard opened one
        self._writer.write(rows)
        self._shard_bytes += size
        self.rows += rows.num_rows
        self.bytes += size

    def _next_shard(self) -> None:
        self.close()
        self._shards.append(self.folder / f"data-{len(self._shards):05d}.arrow")
        self._writer = pa.ipc.new_stream(str(self._shards[-1]), self._schema)
        self._shard_bytes = 0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self, info: datasets.DatasetInfo) -> None:
        """Name the shards and write `state.json` and `dataset_info.json` as `save_to_disk` writes them."""
        if not self._shards:
            self._next_shard()  # an empty split is one shard holding the schema, which datasets can load
        self.close()
        count = len(self._shards)
        names = [f"data-{index:05d}-of-{count:05d}.arrow" for index in range(count)]
        for shard, name in zip(self._shards, names, strict=True):
            shard.rename(self.folder / name)
        state = {
            **_STATE,
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": secrets.token_hex(8),  # as datasets' random fingerprints: 64 bits in hex
            "_split": self.split,
        }
        (self.folder / config.DATASET_STATE_JSON_FILENAME).write_text(json.dumps(state, indent=2, sort_keys=True))
        info.write_to_directory(str(self.folder), pretty_print=True)


def split_info(features: datasets.Features, split: str, *, rows: int, size: int) -> datasets.DatasetInfo:
    """What `Dataset.from_generator` recorded in dataset_info.json before, so no key goes missing."""
    return datasets.DatasetInfo(
        features=features.copy(),
        builder_name="generator",
        dataset_name="generator",
        config_name="default",
        version="0.0.0",
        download_size=0,
        dataset_size=size,
        size_in_bytes=size,
        splits=datasets.SplitDict(
            {split: datasets.SplitInfo(name=split, num_bytes=size, num_examples=rows, dataset_name="generator")},
            dataset_name="generator",
        ),
    )


def dict_finish(folder: Path, splits: list[str]) -> None:
    """`dataset_dict.json`: the splits `DatasetDict.load_from_disk` opens."""
    (folder / config.DATASETDICT_JSON_FILENAME).write_text(json.dumps({"splits": splits}))


def layout_check() -> None:
    """Raise unless the installed datasets is the pinned one or writes the same layout (checked once)."""
    if datasets.__version__ != DATASETS_VERSION:
        _layout_checked(datasets.__version__)


@functools.cache
def _layout_checked(version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="export-layout-") as folder:
        differences = layout_differences(Path(folder))
    if differences:
        raise RuntimeError(
            f"datasets {version} is installed, but the export writes the save_to_disk layout of datasets "
            f"{DATASETS_VERSION} and this one differs: {'; '.join(differences)}. Install datasets=="
            f"{DATASETS_VERSION} (requirements.txt), or update labeling/services/exporting/saved.py to the new layout."
        )


def layout_differences(folder: Path) -> list[str]:
    """How a two-shard split written here differs from `save_to_disk`'s (in `folder`); [] when it does not."""
    features = datasets.Features(
        {
            "prompt": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "votes": datasets.Value("int32"),
        }
    )
    rows = {"prompt": [[{"role": "user", "content": f"Q{n}?"}] for n in range(4)], "votes": list(range(4))}
    dataset = datasets.Dataset.from_dict(rows, features=features, split="train")
    quiet = not datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        datasets.DatasetDict({"train": dataset}).save_to_disk(str(folder / "theirs"), num_shards={"train": 2})
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    halves = [dataset.data.table.slice(0, 2).combine_chunks(), dataset.data.table.slice(2).combine_chunks()]
    ours = SavedSplit(folder / "ours" / "train", halves[0].schema, "train", max_shard_bytes=halves[0].nbytes)
    for half in halves:
        ours.write(half)
    ours.finish(dataset.info)
    dict_finish(folder / "ours", ["train"])
    found = []
    for name in (config.DATASETDICT_JSON_FILENAME, f"train/{config.DATASET_INFO_FILENAME}"):
        if _json(folder / "ours" / name) != _json(folder / "theirs" / name):
            found.append(f"{name} holds other values")
    states = [_json(folder / side / "train" / config.DATASET_STATE_JSON_FILENAME) for side in ("ours", "theirs")]
    if states[0].keys() != states[1].keys():
        found.append(f"state.json has the keys {sorted(states[1])}, not {sorted(states[0])}")
    found += [f"state.json's {key} is {states[1][key]!r}" for key in _STATE if states[0][key] != states[1].get(key)]
    if states[0]["_data_files"] != states[1].get("_data_files"):
        found.append(f"the shards are {states[1].get('_data_files')!r}")
    files = [sorted(path.name for path in (folder / side / "train").iterdir()) for side in ("ours", "theirs")]
    if files[0] != files[1]:
        found.append(f"a split's folder holds {files[1]}")
    loaded = datasets.load_from_disk(str(folder / "ours"))["train"]
    if loaded.features != dataset.features or loaded.to_list() != dataset.to_list():
        found.append("load_from_disk reads other rows back")
    return found


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None
