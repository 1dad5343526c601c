"""The project's numbers: progress, agreement, annotators, leaderboard.

One service feeds `project_stats --json`, the stats API, the dashboard and the
dataset card, so they always agree. A figure that cannot be computed (yet) is None.
"""

import math
import statistics
from collections import defaultdict
from itertools import combinations

from labeling.models import Item, Judgment, Project, Response
from labeling.services.rankings import pair_outcomes

POSITION_BIAS_P = 0.01


def project_stats(*, project: Project) -> dict:
    judgments = list(
        Judgment.objects.filter(project=project)
        .order_by("item_id", "created_at")
        .values(
            "item_id",
            "item__is_gold",
            "annotator_id",
            "annotator__username",
            "ranking",
            "seconds",
            "assignment__shown_order",
        )
    )
    items = Item.objects.filter(project=project)
    models = dict(Response.objects.filter(item__project=project).values_list("id", "model"))
    by_item: dict[int, list[dict]] = defaultdict(list)
    for judgment in judgments:
        by_item[judgment["item_id"]].append(judgment)
    agreeing, compared, per_annotator_agree = _agreement(by_item)
    return {
        "items": items.count(),
        "items_complete": items.filter(is_complete=True).count(),
        "judgments": len(judgments),
        "agreement": {
            "krippendorff_alpha": None,
            "pairwise": round(agreeing / compared, 4) if compared else None,
            "with_reference": _with_reference(project, by_item),
        },
        "annotators": _annotators(judgments, per_annotator_agree, _gold_accuracy(judgments)),
        "leaderboard": _leaderboard(judgments, models),
    }


def _outcomes(judgment: dict) -> dict[tuple[int, int], int]:
    """Per response pair (low id, high id): 1 if low won, -1 if high won, 0 for a tie."""
    result = {}
    for better, worse, tied in pair_outcomes(judgment["ranking"]):
        low, high = min(better, worse), max(better, worse)
        result[(low, high)] = 0 if tied else (1 if better == low else -1)
    return result


def _agreement(by_item: dict[int, list[dict]]):
    """Raw pairwise agreement: of all pairs of judgments on one item, the share that agree."""
    agreeing = compared = 0
    per_annotator: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for group in by_item.values():
        outcomes = [(judgment["annotator_id"], _outcomes(judgment)) for judgment in group]
        for (first_id, first), (second_id, second) in combinations(outcomes, 2):
            for pair, value in first.items():
                if pair in second:
                    same = int(second[pair] == value)
                    agreeing += same
                    compared += 1
                    for annotator_id in (first_id, second_id):
                        per_annotator[annotator_id][0] += same
                        per_annotator[annotator_id][1] += 1
    return agreeing, compared, per_annotator


def _with_reference(project: Project, by_item: dict[int, list[dict]]) -> float | None:
    """Share of items whose majority answer matches the imported reference preference."""
    references = dict(
        Item.objects.filter(project=project, reference__isnull=False, pk__in=list(by_item)).values_list(
            "id", "reference"
        )
    )
    if not references:
        return None
    as_ids = _rankings_by_response_id(references)
    matches = total = 0
    for item_id, ranking in as_ids.items():
        expected = _outcomes({"ranking": ranking})
        tally: dict[tuple[int, int], list[int]] = defaultdict(list)
        for judgment in by_item[item_id]:
            for pair, value in _outcomes(judgment).items():
                tally[pair].append(value)
        for pair, values in tally.items():
            majority = max(set(values), key=values.count)
            if values.count(majority) * 2 > len(values) and pair in expected:
                total += 1
                matches += int(majority == expected[pair])
    return round(matches / total, 4) if total else None


def _rankings_by_response_id(by_item: dict[int, list[list[int]]]) -> dict[int, list[list[int]]]:
    """Rankings of response positions (references, gold answers) as rankings of response ids."""
    positions: dict[int, dict[int, int]] = defaultdict(dict)
    for item_id, position, pk in Response.objects.filter(item_id__in=list(by_item)).values_list(
        "item_id", "position", "id"
    ):
        positions[item_id][position] = pk
    return {
        item_id: [[positions[item_id][position] for position in group] for group in ranking]
        for item_id, ranking in by_item.items()
    }


def _gold_accuracy(judgments: list[dict]) -> dict[int, float]:
    """Per annotator: the share of gold-item response pairs they ordered as the known answer does."""
    gold_ids = {judgment["item_id"] for judgment in judgments if judgment["item__is_gold"]}
    if not gold_ids:
        return {}
    answers = _rankings_by_response_id(
        dict(Item.objects.filter(pk__in=gold_ids, gold_answer__isnull=False).values_list("id", "gold_answer"))
    )
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for judgment in judgments:
        answer = answers.get(judgment["item_id"])
        if answer is None:
            continue
        expected = _outcomes({"ranking": answer})
        for pair, value in _outcomes(judgment).items():
            tally[judgment["annotator_id"]][0] += int(expected.get(pair) == value)
            tally[judgment["annotator_id"]][1] += 1
    return {annotator_id: round(right / total, 4) for annotator_id, (right, total) in tally.items() if total}


def _annotators(judgments: list[dict], per_annotator_agree, gold_accuracy: dict[int, float]) -> list[dict]:
    rows: dict[int, dict] = {}
    for judgment in judgments:
        row = rows.setdefault(
            judgment["annotator_id"],
            {"username": judgment["annotator__username"], "seconds": [], "n": 0, "ties": 0, "left": 0, "strict": 0},
        )
        row["n"] += 1
        if judgment["seconds"] is not None:
            row["seconds"].append(judgment["seconds"])
        ranking, shown = judgment["ranking"], judgment["assignment__shown_order"]
        if len(ranking) == 1:
            row["ties"] += 1
        elif len(ranking[0]) == 1:
            row["strict"] += 1
            row["left"] += int(ranking[0][0] == shown[0])
    result = []
    for annotator_id, row in sorted(rows.items(), key=lambda entry: entry[1]["username"]):
        agree, compared = per_annotator_agree.get(annotator_id, (0, 0))
        p_value = _binomial_two_sided(row["left"], row["strict"]) if row["strict"] else None
        result.append(
            {
                "username": row["username"],
                "judgments": row["n"],
                "median_seconds": round(statistics.median(row["seconds"]), 2) if row["seconds"] else None,
                "agreement": round(agree / compared, 4) if compared else None,
                "gold_accuracy": gold_accuracy.get(annotator_id),
                "tie_rate": round(row["ties"] / row["n"], 4),
                "left_share": round(row["left"] / row["strict"], 4) if row["strict"] else None,
                "left_p_value": round(p_value, 4) if p_value is not None else None,
                "flags": ["position_bias"] if p_value is not None and p_value < POSITION_BIAS_P else [],
            }
        )
    return result


def _binomial_two_sided(successes: int, trials: int) -> float:
    """Exact two-sided binomial test against p = 0.5 (the share picked on the left)."""
    probabilities = [math.comb(trials, k) / 2**trials for k in range(trials + 1)]
    observed = probabilities[successes]
    return min(1.0, sum(p for p in probabilities if p <= observed * (1 + 1e-9)))


def _leaderboard(judgments: list[dict], models: dict[int, str]) -> list[dict]:
    """Wins, losses and ties per model from every pairwise outcome. Scores come with issue #7."""
    table: dict[str, dict] = defaultdict(lambda: {"wins": 0, "losses": 0, "ties": 0})
    for judgment in judgments:
        for better, worse, tied in pair_outcomes(judgment["ranking"]):
            first, second = models.get(better) or "unknown", models.get(worse) or "unknown"
            if tied:
                table[first]["ties"] += 1
                table[second]["ties"] += 1
            else:
                table[first]["wins"] += 1
                table[second]["losses"] += 1
    rows = [
        {"model": model, "score": None, "ci_low": None, "ci_high": None, **counts} for model, counts in table.items()
    ]
    return sorted(rows, key=lambda row: (-(row["wins"] + row["ties"] / 2), row["model"]))
