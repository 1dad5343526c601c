"""Reading what an export needs, in batches of items, as plain tuples.

Judgments come through a server-side cursor with only the columns the config uses
(the `raw` config alone needs timestamps and the assignment's shown order). Each
batch's items and responses are one query each, with the batch's item ids as one
array parameter on PostgreSQL, so no model instance and no per-value preparation
is made for any row.
"""

import hashlib
import hmac
import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
from django.conf import settings
from django.db import connection

from labeling.models import Item, Judgment, Project, Response
from labeling.services import sql

ITEM_BATCH = 2000
CURSOR_CHUNK = 10_000
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
    ordered = judgments(project=project, include_gold=include_gold).order_by("item_id", "created_at")
    if raw:
        rows = ordered.values_list(*RAW_FIELDS).iterator(chunk_size=CURSOR_CHUNK)
    else:
        rows = _pair_rows(ordered.values_list(*PAIR_FIELDS))
    grouped: list[tuple[int, list[tuple]]] = []
    current = None
    for row in rows:
        if row[0] != current:
            if len(grouped) >= ITEM_BATCH:
                yield batch_for(grouped)
                grouped = []
            current = row[0]
            grouped.append((current, []))
        grouped[-1][1].append(row[1:])
    if grouped:
        yield batch_for(grouped)


def _pair_rows(query):
    """(item id, ranking, strength) through a server-side cursor on the ORM's SQL, without per-row converters."""
    sql, params = query.query.sql_with_params()
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(CURSOR_CHUNK):
            for item_id, ranking, strength in chunk:
                yield item_id, decode_json(ranking), strength


def batch_for(grouped: list[tuple[int, list[tuple]]]) -> Batch:
    where, params = sql.in_values([item_id for item_id, _ in grouped], bigint=True)
    item_rows = sql.rows(f"SELECT id, external_id, prompt FROM {Item._meta.db_table} WHERE id {where}", params)  # noqa: S608
    items = {pk: (external_id, decode_json(prompt)) for pk, external_id, prompt in item_rows}
    response_rows = sql.rows(f"SELECT id, model, content FROM {Response._meta.db_table} WHERE item_id {where}", params)  # noqa: S608
    responses = {pk: (model, content) for pk, model, content in response_rows}
    return Batch(grouped, items, responses)


def columnar(*, config: str) -> bool:
    """Whether `pair_tables` can read for `config`: the default config, on PostgreSQL (COPY)."""
    return config == "default" and connection.vendor == "postgresql"


# A judgment that strictly orders exactly two responses, one per group: `aggregate.one_vote`'s case.
_PAIR = (
    "jsonb_typeof(j.ranking) = 'array' AND jsonb_array_length(j.ranking) = 2"
    " AND jsonb_typeof(j.ranking->0) = 'array' AND jsonb_array_length(j.ranking->0) = 1"
    " AND jsonb_typeof(j.ranking->1) = 'array' AND jsonb_array_length(j.ranking->1) = 1"
    " AND j.ranking->0->0 <> j.ranking->1->0"
)
_JUDGMENTS = f"""
SELECT j.item_id, j.strength, p.pair, j.ranking::text,
       CASE WHEN p.pair THEN (j.ranking->0->>0)::bigint END, CASE WHEN p.pair THEN (j.ranking->1->>0)::bigint END,
       i.external_id, '{{"p":' || i.prompt::text || '}}'
FROM (SELECT j.item_id, j.strength, j.ranking, j.created_at FROM {Judgment._meta.db_table} AS j
      WHERE j.project_id = %(project)s AND j.item_id >= %(low)s AND j.item_id < %(high)s
      ORDER BY j.item_id, j.created_at) AS j
JOIN {Item._meta.db_table} AS i ON i.id = j.item_id
CROSS JOIN LATERAL (SELECT {_PAIR} AS pair) AS p
WHERE i.project_id = %(project)s AND i.id >= %(low)s AND i.id < %(high)s GOLD
ORDER BY j.item_id, j.created_at
"""  # noqa: S608 - table names, not values
JUDGMENT_COLUMNS = {
    "item_pk": pa.int64(),
    "strength": pa.int16(),
    "pair": pa.bool_(),
    "ranking": pa.string(),
    "chosen_id": pa.int64(),
    "rejected_id": pa.int64(),
    "external_id": pa.string(),
    "prompt": pa.string(),
}
_RESPONSES = f"SELECT id, item_id, model, content FROM {Response._meta.db_table} WHERE id = ANY(%(ids)s::bigint[])"  # noqa: S608
_ITEM_RESPONSES = _RESPONSES.replace("WHERE id", "WHERE item_id")
RESPONSE_COLUMNS = {"id": pa.int64(), "item_pk": pa.int64(), "model": pa.string(), "content": pa.string()}
_BIGINT_MAX = 2**63 - 1  # above every id: the end of the last range
_BOUNDS = f"""
SELECT item_id FROM (
  SELECT item_id, row_number() OVER (ORDER BY item_id) AS n
  FROM (SELECT DISTINCT item_id FROM {Judgment._meta.db_table} WHERE project_id = %(project)s GOLD) AS judged
) AS numbered WHERE (n - 1) %% %(size)s = 0 ORDER BY item_id
"""  # noqa: S608 - table names, not values
_NOT_GOLD = f"AND item_id NOT IN (SELECT id FROM {Item._meta.db_table} WHERE project_id = %(project)s AND is_gold)"  # noqa: S608


@dataclass
class PairBatch:
    """A batch of `pair_tables`: its rows as a table, which rows are one-vote items', and the other items
    read for the general path (None when there are none)."""

    table: pa.Table
    one_vote: np.ndarray
    general: Batch | None


def pair_tables(*, project: Project, include_gold: bool, messages_type: pa.DataType):
    """Every judgment of the project as `PairBatch`es of ITEM_BATCH judged items each, in item order
    and, per item, in submit order. Table columns: `JUDGMENT_COLUMNS`, then `chosen_model`, `chosen`,
    `rejected_model`, `rejected` (null unless `pair`) and `messages` (the prompt parsed).

    Built for `aggregate.one_vote`'s common case without a Python object per row: PostgreSQL decodes
    the ranking (`pair`: it strictly orders two responses, one per group) and COPY sends CSV that
    pyarrow parses; Arrow joins the responses. The batches are `judgment_batches`' batches, because
    datasets' saved file depends on them (Arrow pads a buffer with the bytes that follow it in its
    record batch), so the same batches give byte-identical files.

    The next batch is read in a thread, on the same connection, while the caller builds and writes
    this one (PostgreSQL works while Python does); the caller must not query until the generator ends.
    """
    gold = "" if include_gold else _NOT_GOLD
    bounds = [row[0] for row in sql.rows(_BOUNDS.replace("GOLD", gold), {"project": project.pk, "size": ITEM_BATCH})]
    statement = _JUDGMENTS.replace("GOLD", "" if include_gold else "AND NOT i.is_gold")
    ranges = list(zip(bounds, [*bounds[1:], _BIGINT_MAX] if bounds else [], strict=True))
    connection.ensure_connection()
    database = connection.connection  # psycopg's: Django's wrapper refuses use from another thread

    def read(low: int, high: int) -> PairBatch | None:
        table = _copy_csv(database, statement, {"project": project.pk, "low": low, "high": high}, JUDGMENT_COLUMNS)
        if not table.num_rows:
            return None
        table = _with_responses(database, table)
        table = table.append_column("messages", _messages(table["prompt"], messages_type))
        one_vote = one_vote_mask(table)
        rest = table.filter(~one_vote)
        return PairBatch(table, one_vote, _general_batch(database, rest) if rest.num_rows else None)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = [pool.submit(read, *bounds) for bounds in ranges[:1]]
        for index in range(len(ranges)):
            found = pending.pop().result()
            if index + 1 < len(ranges):
                pending.append(pool.submit(read, *ranges[index + 1]))
            if found is not None:
                yield found


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


def _with_responses(database, table: pa.Table) -> pa.Table:
    """`table` with the model and content of each pair's chosen and rejected response (null when not found)."""
    ids = pa.chunked_array([table["chosen_id"], table["rejected_id"]]).drop_null()
    responses = _copy_csv(database, _RESPONSES, {"ids": _bigint_array(ids.to_pylist())}, RESPONSE_COLUMNS)
    responses = responses.combine_chunks()
    for side in ("chosen", "rejected"):
        at = pc.index_in(table[f"{side}_id"], value_set=responses["id"])
        same_item = pc.equal(responses["item_pk"].take(at), table["item_pk"])  # a response of the judged item
        at = pc.if_else(same_item, at, pa.scalar(None, at.type))
        table = table.append_column(f"{side}_model", responses["model"].take(at))
        table = table.append_column(side, responses["content"].take(at))
    return table


def _general_batch(database, table: pa.Table) -> Batch:
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
    ids = _bigint_array(list(items))
    rows = _copy_csv(database, _ITEM_RESPONSES, {"ids": ids}, RESPONSE_COLUMNS)
    responses = dict(
        zip(
            rows["id"].to_pylist(),
            zip(rows["model"].to_pylist(), rows["content"].to_pylist(), strict=True),
            strict=True,
        )
    )
    return Batch(grouped, items, responses)


def _bigint_array(values: list[int]) -> str:
    """A `bigint[]` literal: one parameter, cheaper than psycopg's list dumper for many ids."""
    return "{" + ",".join(map(str, values)) + "}"


def _copy_csv(database, statement: str, params: dict, columns: dict[str, pa.DataType]) -> pa.Table:
    """The rows of `statement` through COPY as CSV, parsed by pyarrow: no Python object per row or value."""
    data = bytearray()
    with database.cursor() as cursor, cursor.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)", params) as copy:
        for block in copy:
            data += block
    if not data:
        return pa.table({name: pa.array([], arrow_type) for name, arrow_type in columns.items()})
    return pcsv.read_csv(
        pa.py_buffer(data),
        read_options=pcsv.ReadOptions(column_names=list(columns)),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=columns,
            null_values=[""],  # PostgreSQL writes NULL as an empty unquoted field, '' as ""
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def _messages(objects: pa.ChunkedArray, messages_type: pa.DataType) -> pa.ChunkedArray:
    """The `{"p": [messages]}` JSON texts of a column parsed by pyarrow's JSON reader into `messages_type`."""
    lines = pa.chunked_array(objects).combine_chunks()
    ndjson = pc.binary_join(pa.ListArray.from_arrays([0, len(lines)], lines), "\n")[0].as_buffer()
    parsed = pjson.read_json(
        pa.BufferReader(ndjson),
        read_options=pjson.ReadOptions(block_size=max(1 << 20, len(ndjson) + 1)),
        parse_options=pjson.ParseOptions(
            explicit_schema=pa.schema([("p", messages_type)]), unexpected_field_behavior="ignore"
        ),
    )
    return parsed["p"]


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
