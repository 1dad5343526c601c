"""Turn a file or folder into numbered rows (dicts), whatever its format.

Rows are produced lazily in file order; a row that cannot even be parsed is yielded
as a `RowError` so that the caller can report it with its number and go on.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labeling.services.errors import InvalidInput

FORMATS = ("auto", "jsonl", "json", "csv", "parquet", "hf")
BATCH_ROWS = 1000


@dataclass(frozen=True)
class RowError:
    reason: str


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hf"
    suffix = "".join(path.suffixes[-1:]).lower()
    by_suffix = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    raise InvalidInput(
        f"Cannot tell the format of '{path.name}' from its name; pass --format jsonl|json|csv|parquet|hf."
    )


def read_rows(path: Path, fmt: str = "auto") -> Iterator[tuple[int, dict | RowError]]:
    """Yield (row number, row) pairs; numbers are 1-based (JSONL: the line number)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"Format '{fmt}' is unknown; use one of {', '.join(FORMATS)}.")
    if not path.exists():
        raise InvalidInput(f"'{path}' does not exist.")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt != "hf" and path.is_dir():
        raise InvalidInput(f"'{path}' is a folder; folders are read with --format hf.")
    readers = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet, "hf": _read_folder}
    yield from readers[fmt](path)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                yield number, RowError("is not valid UTF-8")
                continue
            if not line or line.isspace():  # blank: `not line.strip()` without copying the line
                continue
            try:
                row = _json_line(line)
            except json.JSONDecodeError as error:
                yield number, RowError(f"is not valid JSON ({error.msg} at column {error.colno})")
                continue
            yield number, row if isinstance(row, dict) else RowError("is not a JSON object")


# The C scanner `json.loads` runs, with the same (default) options.
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__; typeshed omits it


def _json_line(line: str):
    """`json.loads(line)`: a line holding one JSON value and its line end is scanned directly,
    without `loads`'s wrappers and whitespace regexes (a tenth of reading a row); any other
    line goes through `json.loads`, which returns or raises exactly what it always did."""
    try:
        value, end = _scan_json(line, 0)
    except (StopIteration, ValueError):
        return json.loads(line)
    if line[end:] in ("", "\n", "\r\n"):
        return value
    return json.loads(line)


def _read_json(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput(f"'{path.name}' is not valid UTF-8.") from None
    except json.JSONDecodeError as error:
        raise InvalidInput(f"'{path.name}' is not valid JSON: {error.msg} at line {error.lineno}.") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise InvalidInput(f"'{path.name}' must hold a JSON array of rows (or {{\"data\": [...]}}).")
    for number, row in enumerate(data, start=1):
        yield number, row if isinstance(row, dict) else RowError("is not a JSON object")


def _read_csv(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    # pandas (with numpy) and pyarrow are imported by the readers that use them: importing
    # them is most of a JSONL import's start-up.
    import pandas as pd

    try:
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=BATCH_ROWS, encoding="utf-8")
        number = 0
        for chunk in chunks:
            for row in chunk.to_dict(orient="records"):
                number += 1
                yield number, {key: _decode_cell(key, value) for key, value in row.items()}
    except UnicodeDecodeError:
        raise InvalidInput(f"'{path.name}' is not valid UTF-8.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InvalidInput(f"'{path.name}' is not a readable CSV file: {error}") from None


# CSV cells of these columns may hold JSON: lists of responses or messages, metadata objects.
_JSON_COLUMNS: dict[str, type[list | dict] | tuple[type[list | dict], ...]] = {
    "prompt": (list, dict),
    "responses": list,
    "chosen": list,
    "rejected": list,
    "metadata": dict,
    "conversation_a": list,
    "conversation_b": list,
    "completions": list,
}
_MESSAGE_LISTS = {"prompt", "chosen", "rejected", "conversation_a", "conversation_b"}


def _decode_cell(column: str, value: str):
    """Decode JSON in the columns that may hold it; any other text stays text."""
    kind = _JSON_COLUMNS.get(column)
    text = value.strip()
    if kind is None or not text.startswith(("[", "{")):
        return value
    try:
        decoded = json.loads(text)
    except json.JSONDecodeError:
        return value
    if not isinstance(decoded, kind):
        return value
    if column == "prompt" and isinstance(decoded, dict):
        return decoded if {"role", "text"} <= set(decoded) else value  # an OpenAssistant message tree
    if column in _MESSAGE_LISTS and not all(isinstance(entry, dict) for entry in decoded):
        return value  # a prompt that merely looks like a list stays text
    return decoded


def _read_parquet(path: Path, start: int = 0) -> Iterator[tuple[int, dict | RowError]]:
    import pyarrow.parquet as pq

    try:
        # Without pre_buffer, Arrow keeps only the row group being read, not the whole
        # file's column data, so memory stays flat however large the file is.
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        number = start
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except Exception as error:  # pyarrow raises several types for damaged files
        raise InvalidInput(f"'{path.name}' is not a readable Parquet file: {error}") from None


def _read_folder(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    """A `save_to_disk` folder (Dataset or DatasetDict) or a Hub-layout folder of Parquet files."""
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        yield from _read_saved_dataset(path)
        return
    files = sorted(path.glob("data/*.parquet")) or sorted(path.glob("*.parquet"))
    if not files:
        raise InvalidInput(f"'{path}' is neither a `save_to_disk` folder nor a Hub-layout folder with Parquet files.")
    number = 0
    for file in files:
        for number, row in _read_parquet(file, start=number):  # noqa: B020 - numbering continues across files
            yield number, row


def _read_saved_dataset(path: Path) -> Iterator[tuple[int, dict | RowError]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
        splits = [loaded] if isinstance(loaded, datasets.Dataset) else [loaded[name] for name in loaded]
        number = 0
        for split in splits:
            for batch in split.iter(batch_size=BATCH_ROWS):
                columns = list(batch)
                for values in zip(*(batch[column] for column in columns), strict=True):
                    number += 1
                    yield number, dict(zip(columns, values, strict=True))
    except Exception as error:  # datasets and pyarrow raise many types for damaged folders
        raise InvalidInput(f"'{path}' is not a readable save_to_disk folder: {error}") from None


def count_rows(path: Path, fmt: str = "auto") -> int | None:
    """Rows in a file, cheaply (for progress); None when it cannot be told without reading it all."""
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
        if fmt == "jsonl":
            with path.open("rb") as handle:
                return sum(1 for line in handle if line and not line.isspace())
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if fmt == "csv":
            import pandas as pd

            return max(len(pd.read_csv(path, usecols=[0], dtype=str, keep_default_na=False)), 0)
    except Exception:  # progress is a courtesy; the import itself reports a bad file
        return None
    return None
