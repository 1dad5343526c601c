"""Model leaderboard: Bradley-Terry scores with bootstrap intervals, and win rates.

Every pair of responses a judgment orders is a game between their models. Scores are the
maximum-likelihood Bradley-Terry strengths, fitted the way Chatbot Arena fits them (a
logistic regression without intercept over "model i minus model j" rows, scikit-learn's
LogisticRegression) and put on Arena's Elo-like scale: 400 points are a factor of 10 in
the odds of winning, and the average model sits at 1000.

- Ties count as half a win for each side (`ties="half"`, Arena's practice) or are left
  out (`ties="drop"`).
- A weak Gaussian prior, worth about one game, keeps a model that won (or lost) every game
  finite; with hundreds of games it moves scores by a fraction of a point.
- 95% intervals are bootstrap percentiles: games are resampled with replacement
  (`BOOTSTRAP_RESAMPLES` times, seeded, so the same games always give the same interval,
  however busy the machine; 200 fits take about 0.2 s of CPU for 8 to 20 models). Games
  from one K-way ranking are resampled one by one, so for rankings of more than two
  responses intervals are somewhat too narrow.
"""

from __future__ import annotations

import math

import numpy as np

from labeling.services.metrics.agreement import Units
from labeling.services.metrics.loading import Responses

SCALE = 400.0
BASE = 10.0
INITIAL = 1000.0
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0
TIES = ("half", "drop")


def games_table(units: Units, responses: Responses) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The models that played, wins[i, j] (times model i beat model j) and ties[i, j] (symmetric)."""
    low_model = responses.model_of(units.low)
    high_model = responses.model_of(units.high)
    played = (low_model >= 0) & (high_model >= 0) & (low_model != high_model)
    low_model, high_model, counts = low_model[played], high_model[played], units.counts[played]
    present = np.unique(np.concatenate([low_model, high_model]))
    size = len(present)
    low_index, high_index = np.searchsorted(present, low_model), np.searchsorted(present, high_model)
    cells = size * size
    a_better = np.bincount(low_index * size + high_index, weights=counts[:, 0], minlength=cells)
    b_better = np.bincount(high_index * size + low_index, weights=counts[:, 2], minlength=cells)
    wins = (a_better + b_better).reshape(size, size)
    ties = np.bincount(low_index * size + high_index, weights=counts[:, 1], minlength=cells).reshape(size, size)
    ties = ties + ties.T
    return [responses.models[index] for index in present], wins, ties


def bradley_terry(wins: np.ndarray, ties: np.ndarray, *, ties_policy: str = "half") -> np.ndarray:
    """Scores on the Elo-like scale from wins[i, j] and ties[i, j] (counts may be fractional)."""
    size = len(wins)
    if size < 2:
        return np.full(size, INITIAL)
    tie_weight = 0.5 * ties if ties_policy == "half" else np.zeros_like(ties)
    first, second = np.triu_indices(size, k=1)
    won = wins[first, second] + tie_weight[first, second]
    lost = wins[second, first] + tie_weight[first, second]
    rows = np.zeros((len(first), size))
    rows[np.arange(len(first)), first] = math.log(BASE)
    rows[np.arange(len(first)), second] = -math.log(BASE)
    # Each game appears from both sides (i beat j, j lost to i), so both classes are always
    # present and the fit is symmetric; C = 0.5 makes the prior worth one game, not two.
    features = np.concatenate([rows, rows, -rows, -rows])
    labels = np.concatenate([np.ones(len(first)), np.zeros(len(first)), np.zeros(len(first)), np.ones(len(first))])
    weights = np.concatenate([won, lost, won, lost])
    keep = weights > 0
    if not keep.any():
        return np.full(size, INITIAL)
    # Imported here: scikit-learn takes 1.4 s of CPU to import, which every export's card and
    # every web worker would pay while the stored figures are current.
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=0.5, fit_intercept=False, tol=1e-8, max_iter=1000, solver="newton-cholesky")
    model.fit(features[keep], labels[keep], sample_weight=weights[keep])
    coefficients = model.coef_[0]
    return SCALE * (coefficients - coefficients.mean()) + INITIAL


def bootstrap_intervals(
    wins: np.ndarray,
    ties: np.ndarray,
    *,
    ties_policy: str = "half",
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles of the scores over `resamples` resampled games (all of them, always)."""
    size = len(wins)
    first, second = np.triu_indices(size, k=1)
    cells = np.stack([wins[first, second], wins[second, first], ties[first, second]], axis=1).ravel()
    total = cells.sum()
    if size < 2 or total <= 0:
        return np.full(size, np.nan), np.full(size, np.nan)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(resamples):
        drawn = rng.multinomial(round(total), cells / total).reshape(-1, 3).astype(float)
        sample_wins = np.zeros_like(wins)
        sample_ties = np.zeros_like(ties)
        sample_wins[first, second], sample_wins[second, first] = drawn[:, 0], drawn[:, 1]
        sample_ties[first, second] = sample_ties[second, first] = drawn[:, 2]
        samples.append(bradley_terry(sample_wins, sample_ties, ties_policy=ties_policy))
    scores = np.array(samples)
    return np.percentile(scores, 2.5, axis=0), np.percentile(scores, 97.5, axis=0)


def leaderboard(units: Units, responses: Responses, *, ties_policy: str = "half") -> tuple[list[dict], dict, dict]:
    """Rows sorted by score, the win-rate matrix in the same order, and how it was computed."""
    models, wins, ties = games_table(units, responses)
    method = {
        "model": "bradley-terry",
        "ties": ties_policy,
        "scale": SCALE,
        "base": BASE,
        "initial": INITIAL,
        "resamples": 0,
        "seed": BOOTSTRAP_SEED,
    }
    if not models:
        return [], {"models": [], "win_rate": [], "games": []}, method
    scores = bradley_terry(wins, ties, ties_policy=ties_policy)
    low, high = bootstrap_intervals(wins, ties, ties_policy=ties_policy)
    method["resamples"] = BOOTSTRAP_RESAMPLES
    order = sorted(range(len(models)), key=lambda index: (-scores[index], models[index]))
    rows = [
        {
            "model": models[index],
            "score": round(float(scores[index]), 1),
            "ci_low": _finite(low[index]),
            "ci_high": _finite(high[index]),
            "wins": int(wins[index].sum()),
            "losses": int(wins[:, index].sum()),
            "ties": int(ties[index].sum()),
            "games": int(wins[index].sum() + wins[:, index].sum() + ties[index].sum()),
        }
        for index in order
    ]
    return rows, win_rates(models, wins, ties, order, ties_policy=ties_policy), method


def win_rates(models: list[str], wins, ties, order: list[int], *, ties_policy: str) -> dict:
    """win_rate[r][c]: share of games the row's model won against the column's (ties as half
    a win, or left out), None when they never met; in leaderboard order."""
    tie_weight = 0.5 * ties if ties_policy == "half" else np.zeros_like(ties)
    games = wins + wins.T + (ties if ties_policy == "half" else 0)
    matrix, played = [], []
    for row in order:
        matrix.append(
            [
                round(float((wins[row, column] + tie_weight[row, column]) / games[row, column]), 4)
                if games[row, column]
                else None
                for column in order
            ]
        )
        played.append([int(wins[row, column] + wins[column, row] + ties[row, column]) for column in order])
    return {"models": [models[index] for index in order], "win_rate": matrix, "games": played}


def _finite(value) -> float | None:
    return round(float(value), 1) if np.isfinite(value) else None
