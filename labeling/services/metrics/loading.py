"""Read a project's judgments, responses and reference answers as numpy columns.

Every read is one narrow query of integers. The two-response case, which is almost
every judgment, is taken apart in SQL (`ranking->0->>0` and so on); only rankings of
three or more responses come back as JSON text to be read here. The rows come in
chunks (`row_chunks`: on PostgreSQL one CSV value per chunk through a server-side
cursor, parsed by pandas' C reader; elsewhere through `fetchmany`) and go straight into
compact numpy arrays, so memory is the finished columns plus one chunk, never a table
of Python objects or the whole result as one text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db.models import BigIntegerField, Case, F, IntegerField, Q, TextField, Value, When
from django.db.models.fields.json import KT, KeyTextTransform
from django.db.models.functions import Cast, Floor

from labeling.db.chunks import row_chunks
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


def _ints(series: pd.Series, missing: int = -1, dtype=np.int64) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").fillna(missing).to_numpy(dtype=dtype)


class _Columns:
    """Columns gathered chunk by chunk as compact numpy arrays, each joined at the end.

    `spec` gives each numeric column's dtype and the value of a NULL (None: NaN, for floats).
    Text columns are kept only where they are not NULL (`sparse`): their row numbers and values.
    """

    def __init__(self, spec: Mapping[str, tuple[type, int | None]], sparse: tuple[str, ...] = ()):
        self.spec = spec
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in spec}
        self.sparse: dict[str, tuple[list[np.ndarray], list[str]]] = {name: ([], []) for name in sparse}
        self.rows = 0

    def add(self, chunk: pd.DataFrame) -> None:
        for name, (dtype, missing) in self.spec.items():
            if missing is None:
                values = pd.to_numeric(chunk[name], errors="coerce").to_numpy(dtype=dtype)
            else:
                values = _ints(chunk[name], missing, dtype)
            self.parts[name].append(values)
        for name, (rows, values) in self.sparse.items():
            present = chunk[name].notna().to_numpy()
            rows.append(np.flatnonzero(present) + self.rows)
            values.extend(chunk[name].to_numpy(dtype=object)[present].tolist())
        self.rows += len(chunk)

    def pop(self, name: str) -> np.ndarray:
        """The whole column; its chunks are let go as it is joined."""
        parts = self.parts.pop(name)
        if not parts:
            return np.zeros(0, dtype=self.spec[name][0])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def pop_sparse(self, name: str) -> tuple[np.ndarray, list[str]]:
        rows, values = self.sparse.pop(name)
        return (np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)), values


def _read(queryset, spec: dict, *, sparse: tuple[str, ...] = ()) -> _Columns:
    names = list(spec) + list(sparse)
    columns = _Columns(spec, sparse)
    for chunk in row_chunks(queryset, names, text=sparse):
        columns.add(chunk)
    return columns


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
    sign: np.ndarray  # int8

    @classmethod
    def empty(cls) -> Outcomes:
        owner, low, high = (np.zeros(0, dtype=np.int64) for _ in range(3))
        return cls(owner, low, high, np.zeros(0, dtype=np.int8))


# A ranking's columns from SQL: its first response, the first's tie partner, its second response
# (-1 where absent), and the whole ranking as JSON text for the rows (`more_rows`) that place
# three or more responses.
_RANKING_SPEC = {"first": (np.int64, -1), "first_tie": (np.int64, -1), "second": (np.int64, -1)}


def _outcomes(
    first: np.ndarray, first_tie: np.ndarray, second: np.ndarray, more_rows: np.ndarray, more: list[str]
) -> tuple[Outcomes, np.ndarray, np.ndarray]:
    """Pair outcomes of rankings given by their SQL columns; also, per ranking, the number
    of responses it places (int8) and whether it contains a tie."""
    count = len(first)
    simple = np.ones(count, dtype=bool)
    simple[more_rows] = False
    tied = first_tie >= 0
    other = np.where(tied, first_tie, second)
    keep = simple & (first >= 0) & (other >= 0)
    low, high = np.minimum(first, other)[keep], np.maximum(first, other)[keep]
    sign = np.where(tied[keep], 0, np.where(first[keep] == low, -1, 1)).astype(np.int8)
    del other
    size = np.full(count, 2, dtype=np.int8)
    has_tie = tied
    extra_owner, extra_low, extra_high, extra_sign = [], [], [], []
    for index, text in zip(more_rows.tolist(), more, strict=True):
        ranking = json.loads(text)
        size[index] = sum(len(group) for group in ranking)
        has_tie[index] = any(len(group) > 1 for group in ranking)
        for better, worse, pair_tied in pair_outcomes(ranking):
            extra_owner.append(index)
            extra_low.append(min(better, worse))
            extra_high.append(max(better, worse))
            extra_sign.append(0 if pair_tied else (-1 if better < worse else 1))
    result = Outcomes(
        owner=np.concatenate([np.flatnonzero(keep), np.asarray(extra_owner, dtype=np.int64)]),
        low=np.concatenate([low, np.asarray(extra_low, dtype=np.int64)]),
        high=np.concatenate([high, np.asarray(extra_high, dtype=np.int64)]),
        sign=np.concatenate([sign, np.asarray(extra_sign, dtype=np.int8)]),
    )
    return result, size, has_tie


@dataclass
class Judgments:
    """The project's judgments as columns (one entry per judgment) and their pair outcomes."""

    item: np.ndarray
    annotator: np.ndarray
    strength: np.ndarray  # int8, 0 when not given
    both_bad: np.ndarray
    seconds: np.ndarray  # NaN when unknown
    gold: np.ndarray
    size: np.ndarray  # int8: responses the ranking places
    has_tie: np.ndarray
    winner: np.ndarray  # the single best response, -1 when the best place is a tie
    left: np.ndarray  # the response shown leftmost
    outcomes: Outcomes

    def __len__(self) -> int:
        return len(self.item)


def judgments_load(*, project: Project) -> Judgments:
    """The project's judgments, read in chunks (`row_chunks`) into compact columns: at a
    million judgments about 60 MB of arrays, whatever the chunk size."""
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
    spec = {
        "item": (np.int64, -1),
        "annotator": (np.int64, -1),
        "strength": (np.int8, 0),
        "both_bad": (np.bool_, 0),
        "seconds": (np.float64, None),
        "left": (np.int64, -1),
        **_RANKING_SPEC,
    }
    columns = _read(queryset, spec, sparse=("more",))
    gold_items = np.array(
        Item.objects.filter(project=project, is_gold=True).values_list("id", flat=True), dtype=np.int64
    )
    first, first_tie = columns.pop("first"), columns.pop("first_tie")
    outcomes, size, has_tie = _outcomes(first, first_tie, columns.pop("second"), *columns.pop_sparse("more"))
    item = columns.pop("item")
    return Judgments(
        item=item,
        annotator=columns.pop("annotator"),
        strength=columns.pop("strength"),
        both_bad=columns.pop("both_bad"),
        seconds=columns.pop("seconds") / 100,
        gold=np.isin(item, gold_items),
        size=size,
        has_tie=has_tie,
        winner=np.where(first_tie < 0, first, -1),
        left=columns.pop("left"),
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
    """The project's responses, read in chunks; model names are coded chunk by chunk, so
    only the distinct names are kept as strings."""
    queryset = (
        Response.objects.filter(item__project=project).order_by().values_list("id", "item_id", "position", "model")
    )
    spec = {"id": (np.int64, -1), "item": (np.int64, -1), "position": (np.int64, -1)}
    columns = _Columns(spec)
    codes: list[np.ndarray] = []
    names: dict[str, int] = {}
    for chunk in row_chunks(queryset, [*spec, "model"], text=("model",)):
        columns.add(chunk)
        chunk_codes, uniques = pd.factorize(chunk["model"].fillna("").astype(str).replace("", "unknown"))
        known = np.array([names.setdefault(name, len(names)) for name in uniques], dtype=np.int64)
        codes.append(known[chunk_codes])
    # Codes in the order of the sorted names, as pd.factorize(..., sort=True) numbers them.
    models = sorted(names)
    rank = np.empty(len(names), dtype=np.int64)
    rank[[names[model] for model in models]] = np.arange(len(models))
    model = rank[np.concatenate(codes)] if codes else np.zeros(0, dtype=np.int64)
    ids = columns.pop("id")
    order = np.argsort(ids)
    return Responses(
        ids=ids[order],
        item=columns.pop("item")[order],
        position=columns.pop("position")[order],
        model=model[order],
        models=models,
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
    columns = _read(queryset, {"item": (np.int64, -1), **_RANKING_SPEC}, sparse=("more",))
    if not columns.rows:
        return Outcomes.empty()
    item_ids = columns.pop("item")
    by_position, _, _ = _outcomes(
        columns.pop("first"), columns.pop("first_tie"), columns.pop("second"), *columns.pop_sparse("more")
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
