"""Reading what an export needs, in batches of items: as plain tuples, or as Arrow tables.

`judgment_batches` (every config, both databases): judgments come through a server-side
cursor with only the columns the config uses (the `raw` config alone needs timestamps and
the assignment's shown order). Each batch's items and responses are one query each, with
the batch's item ids as one array parameter on PostgreSQL, so no model instance and no
per-value preparation is made for any row.

`pair_tables` (the default config on PostgreSQL): the same batches as Arrow tables, read
without a Python object per row, for the columnar path of `exporting.columnar`.
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
    # `id` last, as `pair_tables` orders: judgments of one item made at the same instant come
    # out in one order, on both paths and in every run.
    ordered = judgments(project=project, include_gold=include_gold).order_by("item_id", "created_at", "id")
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
    """Whether `pair_tables` can read for `config`: the default config, on PostgreSQL."""
    return config == "default" and connection.vendor == "postgresql"


# A judgment that strictly orders exactly two responses, one per group: `aggregate.one_vote`'s case.
_PAIR = (
    "jsonb_typeof(j.ranking) = 'array' AND jsonb_array_length(j.ranking) = 2"
    " AND jsonb_typeof(j.ranking->0) = 'array' AND jsonb_array_length(j.ranking->0) = 1"
    " AND jsonb_typeof(j.ranking->1) = 'array' AND jsonb_array_length(j.ranking->1) = 1"
    " AND j.ranking->0->0 <> j.ranking->1->0"
)
_JUDGMENTS = f"""
SELECT j.item_id AS item_pk, j.strength, p.pair, j.ranking::text AS ranking,
       CASE WHEN p.pair THEN (j.ranking->0->>0)::bigint END AS chosen_id,
       CASE WHEN p.pair THEN (j.ranking->1->>0)::bigint END AS rejected_id,
       i.external_id, '{{"p":' || i.prompt::text || '}}' AS prompt, j.created_at, j.id
FROM (SELECT j.id, j.item_id, j.strength, j.ranking, j.created_at FROM {Judgment._meta.db_table} AS j
      WHERE j.project_id = %(project)s AND j.item_id >= %(low)s AND j.item_id < %(high)s) AS j
JOIN {Item._meta.db_table} AS i ON i.id = j.item_id
CROSS JOIN LATERAL (SELECT {_PAIR} AS pair) AS p
WHERE i.project_id = %(project)s AND i.id >= %(low)s AND i.id < %(high)s GOLD
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
_RESPONSES = f"""
SELECT r.id, r.item_id AS item_pk, r.model, r.content FROM {Response._meta.db_table} AS r
WHERE r.item_id >= %(low)s AND r.item_id < %(high)s AND r.item_id IN (
  SELECT j.item_id FROM {Judgment._meta.db_table} AS j
  WHERE j.project_id = %(project)s AND j.item_id >= %(low)s AND j.item_id < %(high)s)
"""  # noqa: S608 - table names, not values
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
    the ranking (`pair`: it strictly orders two responses, one per group) and sends each batch as
    a few text values that pyarrow takes as columns; Arrow joins the responses. The batches are
    `judgment_batches`' batches, because datasets' saved file depends on them (Arrow pads a buffer
    with the bytes that follow it in its record batch), so the same batches give byte-identical files.

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
        params = {"project": project.pk, "low": low, "high": high}
        table = _read_csv(database, statement, params, JUDGMENT_COLUMNS, "item_pk, created_at, id", texts=("prompt",))
        if not table.num_rows:
            return None
        responses = _read_csv(database, _RESPONSES, params, RESPONSE_COLUMNS, "id", texts=("content",))
        table = _with_responses(table, responses.combine_chunks())
        table = table.append_column("messages", _messages(table["prompt"], messages_type))
        one_vote = one_vote_mask(table)
        rest = table.filter(~one_vote)
        return PairBatch(table, one_vote, _general_batch(rest, responses) if rest.num_rows else None)

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


def _read_csv(
    database, statement: str, params: dict, columns: dict[str, pa.DataType], order: str, texts: tuple[str, ...] = ()
) -> pa.Table:
    """The `columns` of `statement`'s rows, ordered by `order` (unique), without a Python object per row or value.

    PostgreSQL aggregates the batch into a few values: the short columns as one CSV text (strings
    quoted, NULL an empty field) that pyarrow parses, and each of `texts` (long strings, never
    NULL) as its values run together plus their lengths in bytes, which Arrow takes as they are
    (a string column is exactly that: offsets and bytes). COPY would cost a Python call per row,
    and parsing the long texts as CSV most of the read.
    """
    short = {name: arrow_type for name, arrow_type in columns.items() if name not in texts}
    line = " || ',' || ".join(
        sql.csv_field(f"t.{name}", quoted=pa.types.is_string(arrow_type)) for name, arrow_type in short.items()
    )
    ordered = f" ORDER BY {', '.join(f't.{key.strip()}' for key in order.split(','))}"
    aggregates = [f"string_agg({line}, E'\\n'{ordered})"]
    for name in texts:
        aggregates += [f"string_agg(t.{name}, ''{ordered})", f"string_agg(octet_length(t.{name})::text, ','{ordered})"]
    with database.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(aggregates)} FROM ({statement}) AS t", params)  # noqa: S608
        found = cursor.fetchone()
    if found[0] is None:
        return pa.table({name: pa.array([], arrow_type) for name, arrow_type in columns.items()})
    table = pcsv.read_csv(
        pa.py_buffer(found[0].encode()),
        read_options=pcsv.ReadOptions(column_names=list(short)),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=short,
            null_values=[""],  # NULL is an empty unquoted field; '' is ""
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["true"],
            false_values=["false"],
        ),
    )
    for index, name in enumerate(texts):
        table = table.append_column(name, _joined_strings(found[1 + 2 * index], found[2 + 2 * index]))
    return table.select(list(columns))


def _joined_strings(joined: str, lengths: str) -> pa.Array:
    """A string column from its values run together and their lengths in bytes ("3,0,12")."""
    data = joined.encode()
    offsets = np.zeros(lengths.count(",") + 2, np.int64)
    np.cumsum(np.array(lengths.split(","), np.int64), out=offsets[1:])
    if offsets[-1] != len(data):  # lengths and bytes must agree (a UTF-8 database)
        raise ValueError(f"{len(data)} bytes of text where the lengths add up to {offsets[-1]}")
    strings = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    return strings.cast(pa.string())


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
