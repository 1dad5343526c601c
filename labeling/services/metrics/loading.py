"""Read a project's judgments, responses and reference answers as numpy columns.

Every read is one narrow query of integers. The two-response case, which is almost
every judgment, is taken apart in SQL (`ranking->0->>0` and so on); only rankings of
three or more responses come back as JSON text to be read here. On PostgreSQL the rows
come back as a single CSV text value (`string_agg`) read by pandas' C parser: fetching a
million rows one by one costs seconds of Python time, this a fraction of one. Elsewhere
(SQLite) the same query runs through an ordinary cursor. Both give the same columns.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import DatabaseError, connection
from django.db.models import BigIntegerField, Case, F, IntegerField, Q, TextField, Value, When
from django.db.models.fields.json import KT, KeyTextTransform
from django.db.models.functions import Cast, Floor

from labeling.models import Item, Judgment, Project, Response
from labeling.services.rankings import pair_outcomes


def _int(expression):
    return Cast(expression, IntegerField())


def _ranking_columns(field: str) -> dict:
    """The first response, its tie partner and the second response of a ranking, plus the
    whole ranking as text when it has more than two responses (`more`)."""
    return {
        "first": _int(KT(f"{field}__0__0")),
        "first_tie": _int(KT(f"{field}__0__1")),
        "second": _int(KT(f"{field}__1__0")),
        "k2": KT(f"{field}__2"),
        "k02": KT(f"{field}__0__2"),
        "k11": KT(f"{field}__1__1"),
    }


def _more_than_two(field: str):
    """The ranking as text when it places three or more responses, else NULL."""
    return Case(
        When(
            Q(k2__isnull=False)
            | Q(k02__isnull=False)
            | Q(k11__isnull=False)
            | (Q(first_tie__isnull=False) & Q(second__isnull=False)),
            then=Cast(field, TextField()),
        ),
        default=Value(None, output_field=TextField()),
    )


STATS_WORK_MEM = "128MB"


def frame(queryset, names: list[str], *, text: tuple[str, ...] = (), big_join: bool = False) -> pd.DataFrame:
    """Run a values_list() queryset and return its rows as a DataFrame with `names`.

    On PostgreSQL the rows come back as one CSV text value built by `string_agg`, parsed by
    pandas' C reader: a million rows fetched one by one cost seconds of Python time, one
    value costs a few milliseconds. Columns named in `text` are quoted; the others are numbers.
    """
    sql, params = queryset.query.sql_with_params()
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return pd.DataFrame.from_records(cursor.fetchall(), columns=names, coerce_float=True)
    with connection.cursor() as cursor:
        if big_join:
            # Room for the judgments-assignments hash join in memory (about 90 MB at a million
            # rows): with the default 4 MB it spills to disk in 16 batches, twice the time.
            cursor.execute(f"SET work_mem = '{STATS_WORK_MEM}'")
        columns = [f"c{index}" for index in range(len(names))]
        fields = ", ".join(
            f"coalesce('\"' || replace({column}::text, '\"', '\"\"') || '\"', '')"
            if name in text
            else f"coalesce({column}::text, '')"
            for name, column in zip(names, columns, strict=True)
        )
        # Only column names made here and the ORM's own SQL go into the text; values stay parameters.
        # As bytes (bytea), not text: a Python str of the whole CSV, and the four bytes a
        # character io.StringIO keeps, cost hundreds of MB at a million rows.
        try:
            cursor.execute(
                f"SELECT convert_to(string_agg(concat_ws(',', {fields}), chr(10)), 'UTF8') "  # noqa: S608
                f"FROM ({sql}) AS rows ({', '.join(columns)})",
                params,
            )
            (csv,) = cursor.fetchone()
        finally:
            if big_join:
                # In a transaction the failed query aborted, the SET is rolled back with it.
                with contextlib.suppress(DatabaseError):
                    cursor.execute("RESET work_mem")
    if not csv:
        return pd.DataFrame({name: pd.Series(dtype="object" if name in text else "float64") for name in names})
    return pd.read_csv(
        io.BytesIO(csv),
        encoding="utf-8",
        header=None,
        names=names,
        dtype={name: "object" for name in text},
        keep_default_na=False,
        na_values={name: [""] for name in names},
    )


def _ints(series: pd.Series, missing: int = -1) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").fillna(missing).to_numpy(dtype=np.int64)


@dataclass
class Outcomes:
    """One row per response pair per ranking: (low id, high id) and who won.

    `sign` is -1 when the response with the lower id was better, +1 when the higher one
    was, 0 for a tie: "A" is the response with the lower id, whatever side it was shown on.
    `owner` is the index of the judgment (or reference) the pair came from.
    """

    owner: np.ndarray
    low: np.ndarray
    high: np.ndarray
    sign: np.ndarray

    @classmethod
    def empty(cls) -> Outcomes:
        return cls(*(np.zeros(0, dtype=np.int64) for _ in range(4)))


def _outcomes(first, first_tie, second, more) -> tuple[Outcomes, np.ndarray, np.ndarray]:
    """Pair outcomes of rankings given by their SQL columns; also, per ranking, the number
    of responses it places and whether it contains a tie."""
    count = len(first)
    simple = np.array([text is None or text != text for text in more], dtype=bool) if count else np.zeros(0, bool)
    tied = first_tie >= 0
    other = np.where(tied, first_tie, second)
    low, high = np.minimum(first, other), np.maximum(first, other)
    sign = np.where(tied, 0, np.where(first == low, -1, 1))
    owner = np.arange(count)
    size = np.full(count, 2, dtype=np.int64)
    has_tie = tied.copy()
    extra_owner, extra_low, extra_high, extra_sign = [], [], [], []
    for index in np.flatnonzero(~simple):
        ranking = json.loads(more[index])
        size[index] = sum(len(group) for group in ranking)
        has_tie[index] = any(len(group) > 1 for group in ranking)
        for better, worse, pair_tied in pair_outcomes(ranking):
            extra_owner.append(index)
            extra_low.append(min(better, worse))
            extra_high.append(max(better, worse))
            extra_sign.append(0 if pair_tied else (-1 if better < worse else 1))
    keep = simple & (first >= 0) & (other >= 0)
    result = Outcomes(
        owner=np.concatenate([owner[keep], np.asarray(extra_owner, dtype=np.int64)]),
        low=np.concatenate([low[keep], np.asarray(extra_low, dtype=np.int64)]),
        high=np.concatenate([high[keep], np.asarray(extra_high, dtype=np.int64)]),
        sign=np.concatenate([sign[keep], np.asarray(extra_sign, dtype=np.int64)]),
    )
    return result, size, has_tie


@dataclass
class Judgments:
    """The project's judgments as columns (one entry per judgment) and their pair outcomes."""

    item: np.ndarray
    annotator: np.ndarray
    strength: np.ndarray  # 0 when not given
    both_bad: np.ndarray
    seconds: np.ndarray  # NaN when unknown
    gold: np.ndarray
    size: np.ndarray  # responses the ranking places
    has_tie: np.ndarray
    winner: np.ndarray  # the single best response, -1 when the best place is a tie
    left: np.ndarray  # the response shown leftmost
    outcomes: Outcomes

    def __len__(self) -> int:
        return len(self.item)


def judgments_load(*, project: Project) -> Judgments:
    names = ["item", "annotator", "strength", "both_bad", "seconds", "left", "first", "first_tie", "second", "more"]
    queryset = (
        Judgment.objects.filter(project=project)
        # Array elements by index: a text transform, since has-key tests on arrays look at values.
        .annotate(third_shown=KeyTextTransform("2", "assignment__shown_order"))
        .values_list(
            "item_id",
            "annotator_id",
            "strength",
            _int("both_bad"),
            # Hundredths of a second as an integer: printing floats costs the database more.
            # floor(x + 0.5) in double precision: round() would go through numeric, three
            # times slower over a million rows; the same for the (positive) seconds.
            Cast(Floor(F("seconds") * 100 + 0.5), BigIntegerField()),
            _int(KeyTextTransform("0", "assignment__shown_order")),
            _int(KT("ranking__0__0")),
            _int(KT("ranking__0__1")),
            _int(KT("ranking__1__0")),
            # The whole ranking only when more than two responses were shown.
            Case(
                When(
                    Q(third_shown__isnull=False),
                    then=Cast("ranking", TextField()),
                ),
                default=Value(None, output_field=TextField()),
            ),
        )
    )
    rows = frame(queryset, names, text=("more",), big_join=True)
    gold_items = np.array(
        Item.objects.filter(project=project, is_gold=True).values_list("id", flat=True), dtype=np.int64
    )
    first, first_tie = _ints(rows["first"]), _ints(rows["first_tie"])
    outcomes, size, has_tie = _outcomes(first, first_tie, _ints(rows["second"]), rows["more"].to_numpy(dtype=object))
    single_best = first_tie < 0
    item = _ints(rows["item"])
    return Judgments(
        item=item,
        annotator=_ints(rows["annotator"]),
        strength=_ints(rows["strength"], missing=0),
        both_bad=_ints(rows["both_bad"], missing=0).astype(bool),
        seconds=pd.to_numeric(rows["seconds"], errors="coerce").to_numpy(dtype=np.float64) / 100,
        gold=np.isin(item, gold_items),
        size=size,
        has_tie=has_tie,
        winner=np.where(single_best, first, -1),
        left=_ints(rows["left"]),
        outcomes=outcomes,
    )


@dataclass
class Responses:
    """The project's responses, sorted by id, with each one's model as an index into `models`."""

    ids: np.ndarray
    item: np.ndarray
    position: np.ndarray
    model: np.ndarray
    models: list[str]

    def model_of(self, response_ids: np.ndarray) -> np.ndarray:
        """Model index of each response id (-1 for an id that is not in the project)."""
        if not len(self.ids):
            return np.full(len(response_ids), -1, dtype=np.int64)
        where = np.clip(np.searchsorted(self.ids, response_ids), 0, len(self.ids) - 1)
        return np.where(self.ids[where] == response_ids, self.model[where], -1)

    def ids_at(self, items: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Response id at (item, position) for each pair (-1 where there is none)."""
        if not len(self.ids) or not len(items):
            return np.full(len(items), -1, dtype=np.int64)
        key = self.item * 256 + self.position
        order = np.argsort(key, kind="stable")
        wanted = items * 256 + positions
        where = np.clip(np.searchsorted(key[order], wanted), 0, len(key) - 1)
        found = key[order][where] == wanted
        return np.where(found, self.ids[order][where], -1)


def responses_load(*, project: Project) -> Responses:
    queryset = (
        Response.objects.filter(item__project=project).order_by().values_list("id", "item_id", "position", "model")
    )
    rows = frame(queryset, ["id", "item", "position", "model"], text=("model",)).sort_values("id")
    codes, models = pd.factorize(rows["model"].fillna("").astype(str).replace("", "unknown"), sort=True)
    return Responses(
        ids=_ints(rows["id"]),
        item=_ints(rows["item"]),
        position=_ints(rows["position"]),
        model=np.asarray(codes, dtype=np.int64),
        models=[str(model) for model in models],
    )


def answers_load(*, project: Project, field: str, responses: Responses) -> Outcomes:
    """Pair outcomes of the items' `reference` or `gold_answer` (rankings of response
    positions), in response ids. `owner` is the item id."""
    queryset = (
        Item.objects.filter(project=project, **{f"{field}__isnull": False})
        .annotate(**_ranking_columns(field))
        .annotate(more=_more_than_two(field))
        .values_list("id", "first", "first_tie", "second", "more")
    )
    rows = frame(queryset, ["item", "first", "first_tie", "second", "more"], text=("more",))
    if rows.empty:
        return Outcomes.empty()
    item_ids = _ints(rows["item"])
    by_position, _, _ = _outcomes(
        _ints(rows["first"]), _ints(rows["first_tie"]), _ints(rows["second"]), rows["more"].to_numpy(dtype=object)
    )
    owner_items = item_ids[by_position.owner]
    low = responses.ids_at(owner_items, by_position.low)
    high = responses.ids_at(owner_items, by_position.high)
    # Positions became ids: the pair's order, and so its sign, may flip.
    flipped = low > high
    known = (low >= 0) & (high >= 0)
    return Outcomes(
        owner=owner_items[known],
        low=np.where(flipped, high, low)[known],
        high=np.where(flipped, low, high)[known],
        sign=np.where(flipped, -by_position.sign, by_position.sign)[known],
    )
