"""Agreement between annotators, and between their consensus and imported references.

A *unit* is one pair of responses of one item (an A/B item has one; a ranking of K
responses has K*(K-1)/2). "A" is the response with the lower id, whatever side each
annotator saw it on, so the screen side never enters agreement. Each judgment gives each
of its pairs a nominal value (A better, tie, B better: -1, 0, +1) and, for two-response
judgments, an ordinal value on the signed strength scale (A much better = -3 ... tie = 0
... B much better = +3; a missing strength counts as 1).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import krippendorff
import numpy as np
from krippendorff import krippendorff as _krippendorff

from labeling.services.metrics.loading import Judgments, Outcomes

NOMINAL_DOMAIN = np.array([-1, 0, 1])
ORDINAL_DOMAIN = np.arange(-3, 4)
# Units per call of the package's coincidence step: 16,384 x 7 x 7 doubles are 6 MB.
ALPHA_CHUNK_UNITS = 16_384


def krippendorff_alpha(
    units: np.ndarray, values: np.ndarray, *, domain: np.ndarray, level: krippendorff.LevelOfMeasurement
) -> float | None:
    """Krippendorff's alpha of the `values` given to `units` (one entry per coder per unit),
    computed by the `krippendorff` package from the units' value counts. None when it is
    undefined: no unit with two values, or no variation at all."""
    if not len(units):
        return None
    _, unit_index = np.unique(units, return_inverse=True)
    return alpha_of_counts(_value_counts(unit_index, values, domain), domain=domain, level=level)


def _value_counts(unit_index: np.ndarray, values: np.ndarray, domain: np.ndarray) -> np.ndarray:
    """Units x values table: how many coders gave each value to each unit (unit_index dense, from 0)."""
    width = len(domain)
    cells = unit_index * width + np.searchsorted(domain, values)
    return np.bincount(cells, minlength=(unit_index.max() + 1) * width).reshape(-1, width)


def alpha_of_counts(counts: np.ndarray, *, domain: np.ndarray, level: krippendorff.LevelOfMeasurement) -> float | None:
    counts = counts[counts.sum(axis=1) >= 2]
    if not len(counts) or np.count_nonzero(counts.sum(axis=0)) < 2:
        return None
    result = float(_package_alpha(counts, domain=domain, level=level))
    return None if np.isnan(result) else result


def _package_alpha(counts: np.ndarray, *, domain: np.ndarray, level: krippendorff.LevelOfMeasurement) -> float:
    """`krippendorff.alpha(value_counts=counts, ...)`; above ALPHA_CHUNK_UNITS units, the
    same steps with the package's own functions, its coincidence matrix summed chunk by chunk.

    In one piece the package builds three units x values x values arrays of doubles: at a
    million judgments (333,000 units, the 7 ordinal values) 130 MB each, most of what the
    recompute used to hold. The matrix is a sum over units, so chunks give the same one, and
    the same alpha to the last bit or two of that sum (tests compare the two).
    """
    # Floats, not integers: the package's coincidence step is five times faster on them. Its private
    # helpers' hints ask for integer counts and a np.dtype (not the np.float64 their own default is).
    if len(counts) <= ALPHA_CHUNK_UNITS:
        floats = counts.astype(np.float64)
        return krippendorff.alpha(value_counts=floats, value_domain=domain, level_of_measurement=level)
    coincidences = np.zeros((len(domain), len(domain)))
    for start in range(0, len(counts), ALPHA_CHUNK_UNITS):
        chunk = counts[start : start + ALPHA_CHUNK_UNITS].astype(np.float64)
        coincidences += _krippendorff._coincidences(chunk, dtype=np.float64)  # type: ignore[arg-type]  # see above
    # The rest as krippendorff.alpha does it: expected coincidences and distances from the value totals.
    totals = coincidences.sum(axis=0)
    expected = _krippendorff._random_coincidences(totals, dtype=np.float64)  # type: ignore[arg-type]  # see above
    distances: np.ndarray = _krippendorff._distances(
        np.asarray(domain),
        _krippendorff._distance_metric(level),
        totals,
        dtype=np.float64,  # type: ignore[arg-type]  # see above
    )
    return 1 - (coincidences * distances).sum() / (expected * distances).sum()


@dataclass
class Units:
    """The pair outcomes of non-gold judgments, grouped by unit."""

    index: np.ndarray  # unit of each outcome
    low: np.ndarray  # per unit
    high: np.ndarray  # per unit
    counts: np.ndarray  # per unit: votes for A, tie, B
    outcome_rows: np.ndarray  # which judgment outcomes are in (indexes into judgments.outcomes)

    @property
    def votes(self) -> np.ndarray:
        return self.counts.sum(axis=1)

    def consensus(self) -> np.ndarray:
        """Per unit: the value a strict majority gave (-1, 0, +1), or 2 when there is none."""
        if not len(self.counts):
            return np.zeros(0, dtype=np.int64)
        best = self.counts.argmax(axis=1)
        strict = self.counts.max(axis=1) * 2 > self.votes
        return np.where(strict, best - 1, 2)


def _pair_key(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low.astype(np.int64) * (1 << 32) + high.astype(np.int64)


def units_build(judgments: Judgments) -> Units:
    outcomes = judgments.outcomes
    rows = np.flatnonzero(~judgments.gold[outcomes.owner]) if len(outcomes.owner) else np.zeros(0, np.int64)
    keys = _pair_key(outcomes.low[rows], outcomes.high[rows])
    unique, first, index = np.unique(keys, return_index=True, return_inverse=True)
    counts = np.bincount(index * 3 + outcomes.sign[rows] + 1, minlength=len(unique) * 3).reshape(-1, 3)
    return Units(
        index=index,
        low=outcomes.low[rows][first],
        high=outcomes.high[rows][first],
        counts=counts,
        outcome_rows=rows,
    )


def agreement_summary(judgments: Judgments, units: Units, references: Outcomes) -> dict:
    outcomes = judgments.outcomes
    rows = units.outcome_rows
    owners = outcomes.owner[rows]
    signs = outcomes.sign[rows]
    pair_judgment = judgments.size[owners] == 2
    strength = np.where(judgments.strength[owners] > 0, judgments.strength[owners], 1)
    ordinal = np.where(pair_judgment, signs * strength, signs)
    votes = units.votes
    pairs_total = int((votes * (votes - 1) // 2).sum())
    pairs_agreeing = int((units.counts * (units.counts - 1) // 2).sum())
    return {
        "krippendorff_alpha": _round(alpha_of_counts(units.counts, domain=NOMINAL_DOMAIN, level="nominal")),
        "krippendorff_alpha_ordinal": _round(
            alpha_of_counts(_value_counts(units.index, ordinal, ORDINAL_DOMAIN), domain=ORDINAL_DOMAIN, level="ordinal")
        )
        if len(units.index)
        else None,
        "pairwise": _round(pairs_agreeing / pairs_total) if pairs_total else None,
        "with_reference": with_reference(units, references),
        "units": len(votes),
        "units_with_two_or_more_votes": int((votes >= 2).sum()),
        "vote_splits": vote_splits(units),
    }


def with_reference(units: Units, references: Outcomes) -> float | None:
    """Share of units (with a strict-majority answer and an imported reference) on which the
    majority answer is the reference's."""
    if not len(references.low) or not len(units.low):
        return None
    consensus = units.consensus()
    unit_keys = _pair_key(units.low, units.high)
    reference_keys = _pair_key(references.low, references.high)
    order = np.argsort(reference_keys)
    where = np.clip(np.searchsorted(reference_keys[order], unit_keys), 0, len(order) - 1)
    has_reference = reference_keys[order][where] == unit_keys
    expected = references.sign[order][where]
    compared = has_reference & (consensus != 2)
    total = int(compared.sum())
    return _round(float((consensus[compared] == expected[compared]).mean())) if total else None


def vote_splits(units: Units) -> list[dict]:
    """How the votes of units with two or more votes split: "3-0" (unanimous), "2-1",
    "1-1-1" ..., most common first. The counts are of A, tie and B votes, largest first."""
    counts = units.counts[units.votes >= 2]
    if not len(counts):
        return []
    ordered = -np.sort(-counts, axis=1)
    # One integer per pattern (sorting rows of a table is much slower than sorting numbers).
    base = int(ordered.max()) + 1
    codes = (ordered[:, 0] * base + ordered[:, 1]) * base + ordered[:, 2]
    patterns, frequency = np.unique(codes, return_counts=True)
    tally: Counter[str] = Counter()
    for code, times in zip(patterns.tolist(), frequency.tolist(), strict=True):
        pattern = (code // (base * base), code // base % base, code % base)
        shown = [str(count) for count in pattern if count]
        tally["-".join(shown if len(shown) > 1 else [*shown, "0"])] += times
    total = sum(tally.values())
    return [
        {"split": split, "units": units_count, "share": _round(units_count / total)}
        for split, units_count in sorted(tally.items(), key=lambda entry: (-entry[1], entry[0]))
    ]


def leave_one_out(judgments: Judgments, units: Units) -> tuple[np.ndarray, np.ndarray]:
    """Per outcome row of `units`: whether the other annotators of that unit have a strict
    majority answer, and whether this answer is it."""
    signs = judgments.outcomes.sign[units.outcome_rows]
    others = units.counts[units.index]  # a new array (fancy indexing copies)
    others[np.arange(len(signs)), signs + 1] -= 1
    total = others.sum(axis=1)
    exists = (others.max(axis=1) * 2 > total) & (total > 0)
    agrees = exists & (others[np.arange(len(signs)), signs + 1] * 2 > total)
    return exists, agrees


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
