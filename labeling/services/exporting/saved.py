"""A split written straight in the layout `Dataset.save_to_disk` gives, so its rows are written once.

`save_to_disk` copies a dataset into Arrow stream shards `data-0000K-of-0000N.arrow` of at most
datasets' MAX_SHARD_SIZE (500 MB) each, beside `state.json` (the shards in order, the split) and
`dataset_info.json`; `load_from_disk` maps the shards `state.json` lists, in that order. Here the
rows go to the shards as they are built: a shard ends before the record batch that would take it
past the limit, and the shards are named once their count is known.
"""

import json
from pathlib import Path

import pyarrow as pa
from datasets import DatasetInfo, config
from datasets.fingerprint import generate_random_fingerprint
from datasets.utils.py_utils import asdict, convert_file_size_to_int


class SavedSplit:
    """One split's folder: `write` record batches in order, then `finish` with the split's info."""

    def __init__(self, folder: Path, schema: pa.Schema, split: str, *, max_shard_bytes: int | None = None) -> None:
        self.folder = folder
        self.split = split
        self.rows = 0
        self.bytes = 0  # Arrow's size of the rows, as datasets counts a dataset's size
        self._schema = schema
        self._max_shard_bytes = max_shard_bytes or convert_file_size_to_int(config.MAX_SHARD_SIZE)
        self._shards: list[Path] = []
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._shard_bytes = 0
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, rows: pa.RecordBatch | pa.Table) -> None:
        size = rows.nbytes
        if self._writer is None or (self._shard_bytes and self._shard_bytes + size > self._max_shard_bytes):
            self._next_shard()
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

    def finish(self, info: DatasetInfo) -> None:
        """Name the shards and write `state.json` and `dataset_info.json` as `save_to_disk` writes them."""
        if not self._shards:
            self._next_shard()  # an empty split is one shard holding the schema, which datasets can load
        self.close()
        count = len(self._shards)
        names = [f"data-{index:05d}-of-{count:05d}.arrow" for index in range(count)]
        for shard, name in zip(self._shards, names, strict=True):
            shard.rename(self.folder / name)
        state = {
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": generate_random_fingerprint(),
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": self.split,
        }
        (self.folder / config.DATASET_STATE_JSON_FILENAME).write_text(json.dumps(state, indent=2, sort_keys=True))
        fields = asdict(info)
        # As save_to_disk: only the first level sorted, so nested features keep their column order.
        (self.folder / config.DATASET_INFO_FILENAME).write_text(
            json.dumps({key: fields[key] for key in sorted(fields)}, indent=2)
        )


def finish_dict(folder: Path, splits: list[str]) -> None:
    """`dataset_dict.json`: the splits `DatasetDict.load_from_disk` opens."""
    (folder / config.DATASETDICT_JSON_FILENAME).write_text(json.dumps({"splits": splits}))
