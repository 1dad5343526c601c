"""What an export reads: chunks of whole items as Arrow tables, the test split's items, and Python rows.

Every config reads one way, on both databases: the data layer's statements as Arrow record
batches (`labeling.db.export.item_chunks`), in chunks of about CHUNK_JUDGMENTS judgments that
hold every judgment, item and response of their items. The prompts are parsed by Arrow as they
arrive; `python_batch` turns the items that need Python (several votes, ties, K-way rankings,
the raw and unpaired configs) into plain tuples.
"""

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson

from labeling.db import export as db_export
from labeling.models import Judgment, Project
from labeling.services.exporting.styles import messages_type as messages_arrow_type

CHUNK_JUDGMENTS = 10_000  # judgments per chunk of `chunks`


@dataclass
class Chunk:
    """Whole items, in item order: their judgments (`item_pk`, `ranking` as JSON text, `strength`,
    and the raw config's columns), the items (`item_pk`, `external_id`, `messages`: the prompt) and
    their responses (`id`, `item_pk`, `model`, `content`)."""

    judgments: pa.Table
    items: pa.Table
    responses: pa.Table


@dataclass
class Batch:
    """Judgments of consecutive items, (item id, [judgment tuple without item id]) in item order,
    with those items' (external id, prompt) and their responses' (model, content) by id."""

    judgments: list[tuple[int, list[tuple]]]
    items: dict[int, tuple[str, list[dict]]]
    responses: dict[int, tuple[str, str]]


def test_items(*, project: Project, include_gold: bool, test_size: float, seed: int) -> set[int]:
    """Item ids for the test split: a seeded shuffle of the judged items, so no prompt is in two splits."""
    if not test_size:
        return set()
    found = Judgment.objects.filter(project=project)
    if not include_gold:
        found = found.exclude(item__is_gold=True)
    item_ids = list(found.order_by("item_id").values_list("item_id", flat=True).distinct())
    random.Random(seed).shuffle(item_ids)
    count = round(len(item_ids) * test_size)
    if len(item_ids) >= 2:
        count = min(max(count, 1), len(item_ids) - 1)
    return set(item_ids[:count])


def chunks(*, project: Project, include_gold: bool, raw: bool) -> Iterator[Chunk]:
    """Every judgment of the project (gold items' only with `include_gold`) in `Chunk`s, in item order and,
    per item, in submit order; `raw`: with the raw config's columns."""
    messages_type = messages_arrow_type()

    def parsed(items: pa.RecordBatch) -> pa.RecordBatch:  # in the items' reading thread
        messages = _messages(items["prompt"], messages_type)
        return pa.RecordBatch.from_arrays(
            [items["item_pk"], items["external_id"], messages], names=["item_pk", "external_id", "messages"]
        )

    found = db_export.item_chunks(
        project_id=project.pk, include_gold=include_gold, rows=CHUNK_JUDGMENTS, raw=raw, prepare={"items": parsed}
    )
    for chunk in found:
        yield Chunk(*(chunk[name].combine_chunks() for name in ("judgments", "items", "responses")))


def python_batch(judgments: pa.Table, chunk: Chunk) -> Batch:
    """`judgments` (some or all of the chunk's, in order) as Python tuples, with their items and responses.

    Judgments of items the chunk does not hold (gold items, when they are left out) are dropped.
    """
    wanted = pc.unique(judgments["item_pk"])
    items = chunk.items.filter(pc.is_in(chunk.items["item_pk"], value_set=wanted))
    found = zip(*(items[name].to_pylist() for name in ("item_pk", "external_id", "messages")), strict=True)
    by_id = {item_id: (external_id, messages) for item_id, external_id, messages in found}
    columns = [judgments[name].to_pylist() for name in judgments.schema.names]
    ranking = judgments.schema.get_field_index("ranking")
    columns[ranking] = list(map(decode_json, columns[ranking]))
    grouped: list[tuple[int, list[tuple]]] = []
    for item_id, *judgment in zip(*columns, strict=True):
        if item_id not in by_id:
            continue
        if not grouped or grouped[-1][0] != item_id:
            grouped.append((item_id, []))
        grouped[-1][1].append(tuple(judgment))
    responses = chunk.responses.filter(pc.is_in(chunk.responses["item_pk"], value_set=wanted))
    found = zip(*(responses[name].to_pylist() for name in ("id", "model", "content")), strict=True)
    return Batch(grouped, by_id, {pk: (model, content) for pk, model, content in found})


def _messages(lines: pa.Array, messages_type: pa.DataType) -> pa.Array:
    """The prompts' message lists, parsed by pyarrow's JSON reader into `messages_type`.

    `lines`: each prompt as one line of JSON Lines, `{"p": [...]}` and a newline (the data layer's
    `ITEMS` writes them so), so the column's bytes are already the reader's input.
    """
    if not len(lines):
        return pa.array([], messages_type)
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
    ndjson = lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]
    parsed = pjson.read_json(
        pa.BufferReader(ndjson),
        read_options=pjson.ReadOptions(block_size=max(1 << 20, len(ndjson) + 1)),
        parse_options=pjson.ParseOptions(
            explicit_schema=pa.schema([("p", messages_type)]), unexpected_field_behavior="ignore"
        ),
    )
    column = parsed["p"]
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


_decode = json.JSONDecoder().raw_decode


def decode_json(value: str):
    """A JSON column read as text (both databases).

    `raw_decode` skips `json.loads`' checks and whitespace scans, a third of its time on short
    values; anything it refuses (leading whitespace) goes through `json.loads`.
    """
    try:
        return _decode(value)[0]
    except json.JSONDecodeError:
        return json.loads(value)
