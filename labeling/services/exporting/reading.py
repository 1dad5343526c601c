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
from dataclasses import dataclass

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
        while chunk := cursor.fetchmany(CURSOR_CHUNK):
            for item_id, ranking, strength in chunk:
                yield item_id, _json(ranking), strength


def _batch(grouped: list[tuple[int, list[tuple]]]) -> Batch:
    where, params = sql.in_values([item_id for item_id, _ in grouped], bigint=True)
    item_rows = sql.rows(f"SELECT id, external_id, prompt FROM {Item._meta.db_table} WHERE id {where}", params)  # noqa: S608
    items = {pk: (external_id, _json(prompt)) for pk, external_id, prompt in item_rows}
    response_rows = sql.rows(f"SELECT id, model, content FROM {Response._meta.db_table} WHERE item_id {where}", params)  # noqa: S608
    responses = {pk: (model, content) for pk, model, content in response_rows}
    return Batch(grouped, items, responses)


_decode = json.JSONDecoder().raw_decode


def _json(value):
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
