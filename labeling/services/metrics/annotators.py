"""Per-annotator figures and the flags a manager should look at.

Thresholds (a flag needs enough evidence as well as a bad figure, so a new annotator
with five judgments is not flagged on noise):

- `position_bias`: the annotator's single best pick is the leftmost response more or less
  often than chance (1/K) with a two-sided exact binomial test p < POSITION_BIAS_P, *and*
  the share is at least POSITION_BIAS_MIN_EFFECT away from chance (with thousands of
  judgments a harmless 52% would otherwise be "significant").
- `too_fast`: with at least MIN_JUDGMENTS judgments, the median seconds per judgment is
  below TOO_FAST_SECONDS, or below TOO_FAST_SHARE of the project's median.
- `low_agreement`: agreement with the leave-one-out consensus below LOW_AGREEMENT over at
  least MIN_AGREEMENT_COMPARISONS compared answers. Someone answering at random agrees
  about half of the time on A/B items; careful annotators usually 75% or more.
- `low_gold_accuracy`: accuracy on gold items below LOW_GOLD_ACCURACY over at least
  MIN_GOLD_COMPARISONS gold answers (random answers score about 50%).
"""

from __future__ import annotations

import itertools

import numpy as np
from django.contrib.auth import get_user_model

from labeling.services.metrics.agreement import Units, _round, leave_one_out
from labeling.services.metrics.loading import Judgments, Outcomes

POSITION_BIAS_P = 0.01
POSITION_BIAS_MIN_EFFECT = 0.15
MIN_JUDGMENTS = 10
TOO_FAST_SECONDS = 3.0
TOO_FAST_SHARE = 0.25
LOW_AGREEMENT = 0.6
MIN_AGREEMENT_COMPARISONS = 20
LOW_GOLD_ACCURACY = 0.7
MIN_GOLD_COMPARISONS = 10

FLAGS = ("position_bias", "too_fast", "low_agreement", "low_gold_accuracy")


def _per_annotator(index: np.ndarray, weights, count: int) -> np.ndarray:
    return np.bincount(index, weights=weights, minlength=count)


def annotator_rows(judgments: Judgments, units: Units, gold_answers: Outcomes) -> list[dict]:
    # Imported here: SciPy takes about a second of CPU to import, which every export's card
    # and every web worker would pay while the stored figures are current.
    from scipy.stats import binomtest

    if not len(judgments):
        return []
    annotator_ids, who = np.unique(judgments.annotator, return_inverse=True)
    count = len(annotator_ids)
    usernames = dict(get_user_model().objects.filter(pk__in=annotator_ids.tolist()).values_list("pk", "username"))
    n = _per_annotator(who, None, count)
    ties = _per_annotator(who, judgments.has_tie, count)
    both_bad = _per_annotator(who, judgments.both_bad, count)
    medians = _medians(who, judgments.seconds, count)
    project_median = float(np.nanmedian(judgments.seconds)) if np.isfinite(judgments.seconds).any() else None
    # Left-side picks: judgments with a single best response; chance is 1/K.
    strict = judgments.winner >= 0
    left_picks = _per_annotator(who, strict & (judgments.winner == judgments.left), count)
    strict_count = _per_annotator(who, strict, count)
    chance = _per_annotator(who, np.where(strict, 1.0 / np.maximum(judgments.size, 2), 0.0), count)
    # Agreement with the leave-one-out consensus, on the units (non-gold pairs).
    exists, agrees = leave_one_out(judgments, units)
    unit_who = who[judgments.outcomes.owner[units.outcome_rows]]
    compared = _per_annotator(unit_who, exists, count)
    agreed = _per_annotator(unit_who, agrees, count)
    gold_right, gold_total = _gold(judgments, who, gold_answers, count)
    rows = []
    for index, annotator_id in enumerate(annotator_ids.tolist()):
        expected = chance[index] / strict_count[index] if strict_count[index] else None
        p_value = (
            binomtest(int(left_picks[index]), int(strict_count[index]), expected).pvalue
            if strict_count[index]
            else None
        )
        row = {
            "username": usernames.get(annotator_id, f"user {annotator_id}"),
            "judgments": int(n[index]),
            "median_seconds": _round(medians[index], 2),
            "agreement": _round(agreed[index] / compared[index]) if compared[index] else None,
            "agreement_compared": int(compared[index]),
            "gold_accuracy": _round(gold_right[index] / gold_total[index]) if gold_total[index] else None,
            "gold_compared": int(gold_total[index]),
            "tie_rate": _round(ties[index] / n[index]),
            "both_bad_rate": _round(both_bad[index] / n[index]),
            "left_share": _round(left_picks[index] / strict_count[index]) if strict_count[index] else None,
            "left_expected": _round(expected),
            "left_p_value": _round(p_value),
        }
        row["flags"] = _flags(row, project_median, raw_p_value=p_value)
        rows.append(row)
    return sorted(rows, key=lambda row: row["username"])


def _medians(who: np.ndarray, seconds: np.ndarray, count: int) -> list[float | None]:
    known = np.isfinite(seconds)
    order = np.lexsort((seconds[known], who[known]))
    grouped_who, grouped_seconds = who[known][order], seconds[known][order]
    bounds = np.searchsorted(grouped_who, np.arange(count + 1))
    return [
        float(np.median(grouped_seconds[start:end])) if end > start else None
        for start, end in itertools.pairwise(bounds)
    ]


def _gold(judgments: Judgments, who: np.ndarray, answers: Outcomes, count: int):
    """Per annotator: gold-item pairs answered as the known answer does, and gold pairs answered."""
    outcomes = judgments.outcomes
    on_gold = np.flatnonzero(judgments.gold[outcomes.owner]) if len(outcomes.owner) else np.zeros(0, np.int64)
    if not len(on_gold) or not len(answers.low):
        return np.zeros(count), np.zeros(count)
    answer_keys = answers.low * (1 << 32) + answers.high
    order = np.argsort(answer_keys)
    keys = outcomes.low[on_gold] * (1 << 32) + outcomes.high[on_gold]
    where = np.clip(np.searchsorted(answer_keys[order], keys), 0, len(order) - 1)
    known = answer_keys[order][where] == keys
    right = known & (answers.sign[order][where] == outcomes.sign[on_gold])
    # Only judgments of items that have a gold answer count.
    counted = np.isin(judgments.item[outcomes.owner[on_gold]], answers.owner)
    gold_who = who[outcomes.owner[on_gold]]
    return _per_annotator(gold_who, right & counted, count), _per_annotator(gold_who, counted, count)


def _flags(row: dict, project_median: float | None, *, raw_p_value: float | None) -> list[str]:
    flags = []
    if (
        raw_p_value is not None
        and raw_p_value < POSITION_BIAS_P
        and abs(row["left_share"] - row["left_expected"]) >= POSITION_BIAS_MIN_EFFECT
    ):
        flags.append("position_bias")
    median = row["median_seconds"]
    if median is not None and row["judgments"] >= MIN_JUDGMENTS:
        relative = project_median is not None and median < TOO_FAST_SHARE * project_median
        if median < TOO_FAST_SECONDS or relative:
            flags.append("too_fast")
    if row["agreement_compared"] >= MIN_AGREEMENT_COMPARISONS and row["agreement"] < LOW_AGREEMENT:
        flags.append("low_agreement")
    if row["gold_compared"] >= MIN_GOLD_COMPARISONS and row["gold_accuracy"] < LOW_GOLD_ACCURACY:
        flags.append("low_gold_accuracy")
    return flags
