"""Reading what an export needs, in batches of items: as plain tuples, or as Arrow tables.

`judgment_batches` (every config, both databases): judgments come through a server-side
cursor with only the columns the config uses (the `raw` config alone needs timestamps and
the assignment's shown order). Each batch's items and responses are one query each, with
the batch's item ids as one array parameter on PostgreSQL, so no model instance and no
per-value preparation is made for any row.

`pair_tables` (the default config, both databases): batches of whole items as Arrow tables, read
without a Python object per row (`streams`), for the columnar path of `exporting.columnar`.
"""

import hashlib
import hmac
import json
import random
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson
from django.conf import settings
from django.db import connection

from labeling.db import sql
from labeling.models import Item, Judgment, Project, Response
from labeling.services.exporting import streams
from labeling.services.exporting.aggregate import ONE_VOTE_RANKING
from labeling.services.exporting.columnar import whole

ITEM_BATCH = 2000
PAIR_FIELDS = ("item_id", "ranking", "strength")
RAW_FIELDS = (
    *PAIR_FIELDS,
    "id",
    "annotator_id",
    "both_bad",
    "rationale",
    "criteria",
    "seconds",
    "late",
    "created_at",
    "updated_at",
    "assignment__shown_order",
)


@dataclass
class Batch:
    """Judgments of consecutive items, (item id, [judgment tuple without item id]) in item order,
    with those items' (external id, prompt) and their responses' (model, content) by id."""

    judgments: list[tuple[int, list[tuple]]]
    items: dict[int, tuple[str, list[dict]]]
    responses: dict[int, tuple[str, str]]


def judgments(*, project: Project, include_gold: bool):
    found = Judgment.objects.filter(project=project)
    return found if include_gold else found.exclude(item__is_gold=True)


def test_items(*, project: Project, include_gold: bool, test_size: float, seed: int) -> set[int]:
    """Item ids for the test split: a seeded shuffle of the judged items, so no prompt is in two splits."""
    if not test_size:
        return set()
    found = judgments(project=project, include_gold=include_gold)
    item_ids = list(found.order_by("item_id").values_list("item_id", flat=True).distinct())
    random.Random(seed).shuffle(item_ids)
    count = round(len(item_ids) * test_size)
    if len(item_ids) >= 2:
        count = min(max(count, 1), len(item_ids) - 1)
    return set(item_ids[:count])


def judgment_batches(*, project: Project, raw: bool, include_gold: bool):
    """Yield a `Batch` for every ITEM_BATCH judged items, in item order and, per item, in submit order."""
    # `id` last, as `pair_tables` orders: judgments of one item made at the same instant come
    # out in one order, on both paths and in every run.
    ordered = judgments(project=project, include_gold=include_gold).order_by("item_id", "created_at", "id")
    if raw:
        rows = ordered.values_list(*RAW_FIELDS).iterator(chunk_size=streams.CURSOR_ROWS)
    else:
        rows = _pair_rows(ordered.values_list(*PAIR_FIELDS))
    grouped: list[tuple[int, list[tuple]]] = []
    current = None
    for row in rows:
        if row[0] != current:
            if len(grouped) >= ITEM_BATCH:
                yield _batch(grouped)
                grouped = []
            current = row[0]
            grouped.append((current, []))
        grouped[-1][1].append(row[1:])
    if grouped:
        yield _batch(grouped)


def _pair_rows(query):
    """(item id, ranking, strength) through a server-side cursor on the ORM's SQL, without per-row converters."""
    sql, params = query.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(streams.CURSOR_ROWS):
            for item_id, ranking, strength in chunk:
                yield item_id, decode_json(ranking), strength


def _batch(grouped: list[tuple[int, list[tuple]]]) -> Batch:
    where, params = sql.in_values([item_id for item_id, _ in grouped], bigint=True)
    item_rows = sql.rows(f"SELECT id, external_id, prompt FROM {Item._meta.db_table} WHERE id {where}", params)  # noqa: S608
    items = {pk: (external_id, decode_json(prompt)) for pk, external_id, prompt in item_rows}
    response_rows = sql.rows(f"SELECT id, model, content FROM {Response._meta.db_table} WHERE item_id {where}", params)  # noqa: S608
    responses = {pk: (model, content) for pk, model, content in response_rows}
    return Batch(grouped, items, responses)


def columnar(*, config: str) -> bool:
    """Whether `pair_tables` can read for `config`: the default config (both databases)."""
    return config == "default"


PAIR_BATCH = 10_000  # judgments per batch of `pair_tables`


@dataclass
class PairBatch:
    """A batch of `pair_tables`: its rows as a table, which rows are one-vote items', and the other items
    read for the general path (None when there are none)."""

    table: pa.Table
    one_vote: np.ndarray
    general: Batch | None


def pair_tables(*, project: Project, include_gold: bool, messages_type: pa.DataType):
    """Every judgment of the project as `PairBatch`es of about PAIR_BATCH judgments (whole items), in item
    order and, per item, in submit order. Table columns: `item_pk`, `strength`, `pair`, `ranking`,
    `chosen_id`, `rejected_id` (null unless `pair`), `external_id`, `messages` (the prompt), then
    `chosen_model`, `chosen`, `rejected_model`, `rejected` (null unless `pair`).

    Built for `aggregate.one_vote`'s common case without a Python object per row: the judgments,
    items and responses come as Arrow streams (`streams.aligned`); Arrow decides which rankings
    strictly order two responses and joins items and responses to the judgments.
    """

    def parsed(items: pa.RecordBatch) -> pa.RecordBatch:  # in the items' reading thread
        messages = _messages(items["prompt"], messages_type)
        return pa.RecordBatch.from_arrays(
            [items["item_pk"], items["external_id"], messages], names=["item_pk", "external_id", "messages"]
        )

    chunks = streams.aligned(
        project_id=project.pk, include_gold=include_gold, rows=PAIR_BATCH, prepare={"items": parsed}
    )
    for chunk in chunks:
        responses = chunk["responses"].combine_chunks()
        table = _judged(chunk["judgments"].combine_chunks(), chunk["items"].combine_chunks())
        table = _with_responses(table, responses)
        one_vote = one_vote_mask(table)
        rest = table if not one_vote.any() else table.filter(~one_vote)
        yield PairBatch(table, one_vote, _general_batch(rest, responses) if rest.num_rows else None)


def _judged(judgments: pa.Table, items: pa.Table) -> pa.Table:
    """The judgments of `items` with `pair`, `chosen_id` and `rejected_id` from the ranking, and their
    item's columns. Judgments of other items (gold items, when `items` leaves them out) are dropped."""
    external_id, messages = items["external_id"], items["messages"]
    if judgments.num_rows != items.num_rows or not judgments["item_pk"].equals(items["item_pk"]):
        at = pc.index_in(judgments["item_pk"], value_set=items["item_pk"])  # items judged more than once, gold
        if at.null_count:
            judgments, at = judgments.filter(at.is_valid()), at.drop_null()
        external_id, messages = external_id.take(at), messages.take(at)
    found = pc.extract_regex(judgments["ranking"], ONE_VOTE_RANKING)
    chosen, rejected = (pc.cast(ids, pa.int64()) for ids in found.flatten())
    pair = pc.fill_null(pc.not_equal(chosen, rejected), False)
    return pa.table(
        {
            "item_pk": judgments["item_pk"],
            "strength": judgments["strength"],
            "pair": pair,
            "ranking": judgments["ranking"],
            "chosen_id": pc.if_else(pair, chosen, pa.scalar(None, pa.int64())),
            "rejected_id": pc.if_else(pair, rejected, pa.scalar(None, pa.int64())),
            "external_id": external_id,
            "messages": messages,
        }
    )


def one_vote_mask(table: pa.Table) -> np.ndarray:
    """Rows of items with exactly one judgment that strictly orders two of the item's responses."""
    items = table["item_pk"].to_numpy()
    first = np.ones(len(items), bool)
    first[1:] = items[1:] != items[:-1]
    last = np.ones(len(items), bool)
    last[:-1] = first[1:]
    pair = table["pair"].to_numpy(zero_copy_only=False)
    found = table["chosen_model"].is_valid().to_numpy(zero_copy_only=False)
    found &= table["rejected_model"].is_valid().to_numpy(zero_copy_only=False)
    return first & last & pair & found


def _with_responses(table: pa.Table, responses: pa.Table) -> pa.Table:
    """`table` with the model and content of each pair's chosen and rejected response (null when not found)."""
    for side in ("chosen", "rejected"):
        at = pc.index_in(table[f"{side}_id"], value_set=responses["id"])
        same_item = pc.equal(responses["item_pk"].take(at), table["item_pk"])  # a response of the judged item
        at = pc.if_else(same_item, at, pa.scalar(None, at.type))
        table = table.append_column(f"{side}_model", responses["model"].take(at))
        table = table.append_column(side, responses["content"].take(at))
    return table


def _general_batch(table: pa.Table, responses: pa.Table) -> Batch:
    """The items of `table` as `judgment_batches` gives them: judgments (ranking, strength), prompts, responses."""
    grouped: list[tuple[int, list[tuple]]] = []
    items = {}
    columns = ("item_pk", "ranking", "strength", "external_id", "messages")
    for item_id, ranking, strength, external_id, messages in zip(
        *(table[name].to_pylist() for name in columns), strict=True
    ):
        if not grouped or grouped[-1][0] != item_id:
            grouped.append((item_id, []))
            items[item_id] = (external_id, messages)
        grouped[-1][1].append((decode_json(ranking), strength))
    wanted = responses.filter(pc.is_in(responses["item_pk"], value_set=pa.array(list(items), pa.int64())))
    found = zip(wanted["id"].to_pylist(), wanted["model"].to_pylist(), wanted["content"].to_pylist(), strict=True)
    return Batch(grouped, items, {pk: (model, content) for pk, model, content in found})


def _messages(lines: pa.Array, messages_type: pa.DataType) -> pa.Array:
    """The prompts' message lists, parsed by pyarrow's JSON reader into `messages_type`.

    `lines`: each prompt as one line of JSON Lines, `{"p": [...]}` and a newline (`streams.ITEMS`
    writes them so), so the column's bytes are already the reader's input.
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
    return whole(parsed["p"])


_decode = json.JSONDecoder().raw_decode


def decode_json(value):
    """A JSON column read by a plain cursor: text on both databases (Django loads jsonb as text).

    `raw_decode` skips `json.loads`' checks and whitespace scans, a third of its time on short
    values; anything it refuses (leading whitespace) goes through `json.loads`.
    """
    if not isinstance(value, str):
        return json.loads(value) if isinstance(value, bytes) else value
    try:
        return _decode(value)[0]
    except json.JSONDecodeError:
        return json.loads(value)


def annotator_pseudonym(project: Project, annotator_id: int) -> str:
    """A stable id per annotator and project that does not reveal who they are."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{project.pk}:{annotator_id}".encode(), hashlib.sha256)
    return "annotator-" + digest.hexdigest()[:12]
