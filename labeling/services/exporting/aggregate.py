"""From rankings to preference pairs: per-pair vote counts and aggregation policies.

Every strictly ordered pair of a ranking is a vote, so a K-way ranking gives up to
K*(K-1)/2 preference pairs; tied pairs are counted, never exported. A pair's
`rank_gap` is how many places apart a ranking puts the two responses (a tie group
is one place): 1 for neighbours, up to K-1. Under `all` each row carries its own
judgment's gap; under `majority` and `unanimous` it is the median (the lower middle
value) of the gaps in the votes that agree with the exported preference.
"""

from dataclasses import dataclass, field
from statistics import median_low

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labeling.services.rankings import pair_outcomes, rank_of

POLICIES = ("majority", "unanimous", "all")


@dataclass
class PairVotes:
    """Votes on one unordered pair of responses of one item."""

    low: int
    high: int
    wins_low: int = 0
    wins_high: int = 0
    ties: int = 0
    strengths_low: list[int] = field(default_factory=list)
    strengths_high: list[int] = field(default_factory=list)
    gaps_low: list[int] = field(default_factory=list)
    gaps_high: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.wins_low + self.wins_high + self.ties


@dataclass(frozen=True)
class Preference:
    chosen: int
    rejected: int
    votes: int
    agreement: float
    margin: float
    rank_gap: int


@dataclass
class AggregateCounts:
    pairs: int = 0
    exported: int = 0
    tied: int = 0
    split: int = 0
    below_agreement: int = 0

    def add_one_votes(self, count: int) -> None:
        """`count` items whose only judgment strictly orders two responses: each one pair, exported."""
        self.pairs += count
        self.exported += count


def item_pairs(judgments: list[tuple[list[list[int]], int | None]]) -> dict[tuple[int, int], PairVotes]:
    """Count, over an item's judgments (ranking, strength), the wins and ties of each pair of responses."""
    pairs: dict[tuple[int, int], PairVotes] = {}
    for ranking, strength in judgments:
        strength = strength or 1
        place = rank_of(ranking)
        for better, worse, tied in pair_outcomes(ranking):
            low, high = min(better, worse), max(better, worse)
            votes = pairs.setdefault((low, high), PairVotes(low, high))
            if tied:
                votes.ties += 1
            elif better == low:
                votes.wins_low += 1
                votes.strengths_low.append(strength)
                votes.gaps_low.append(place[worse] - place[better])
            else:
                votes.wins_high += 1
                votes.strengths_high.append(strength)
                votes.gaps_high.append(place[worse] - place[better])
    return pairs


def aggregate(
    pairs: dict[tuple[int, int], PairVotes],
    *,
    policy: str,
    min_agreement: float | None,
    counts: AggregateCounts,
) -> list[Preference]:
    """The preferences an item yields under `policy`; ties and split votes are counted, not exported.

    majority: the side more than half of the votes prefer; unanimous: every vote
    prefers it; all: one preference per judgment that orders the pair.
    """
    preferences = []
    for votes in pairs.values():
        counts.pairs += 1
        if policy == "all":
            preferences.extend(_every_vote(votes))
            continue
        winner_wins = max(votes.wins_low, votes.wins_high)
        if votes.ties and votes.ties >= winner_wins:
            counts.tied += 1
            continue
        needed = votes.total if policy == "unanimous" else votes.total // 2 + 1
        if votes.wins_low == votes.wins_high or winner_wins < needed:
            counts.split += 1
            continue
        agreement = winner_wins / votes.total
        if min_agreement is not None and agreement < min_agreement:
            counts.below_agreement += 1
            continue
        low_wins = votes.wins_low > votes.wins_high
        chosen, rejected = (votes.low, votes.high) if low_wins else (votes.high, votes.low)
        strengths = votes.strengths_low if low_wins else votes.strengths_high
        gap = median_low(votes.gaps_low if low_wins else votes.gaps_high)
        preferences.append(Preference(chosen, rejected, votes.total, agreement, _margin(agreement, strengths), gap))
    counts.exported += len(preferences)
    return preferences


def one_vote(ranking: list[list[int]], strength: int | None, counts: AggregateCounts) -> Preference | None:
    """An item's only judgment, when it strictly orders two responses: the preference every policy gives.

    The common case (overlap 1, pairwise) without the general per-pair bookkeeping: one
    vote, agreement 1, neighbours; None when the general path must decide.
    """
    if len(ranking) != 2 or len(ranking[0]) != 1 or len(ranking[1]) != 1 or ranking[0][0] == ranking[1][0]:
        return None
    counts.add_one_votes(1)
    return Preference(ranking[0][0], ranking[1][0], 1, 1.0, _margin(1.0, [strength or 1]), 1)


# `one_vote`'s case as jsonb writes the ranking's text, for a regex over a column of rankings
# (the two ids must also differ): PostgreSQL writes every jsonb value in one canonical form,
# `[[12], [34]]`. Any other text (ties, K-way, anything unexpected) is for the general path.
ONE_VOTE_RANKING = r"^\[\[(?P<chosen>[0-9]{1,18})\], \[(?P<rejected>[0-9]{1,18})\]\]$"


def one_vote_margins(strengths: pa.ChunkedArray) -> np.ndarray:
    """`one_vote`'s margin, `_margin(1.0, [strength or 1])`, for every strength of an Arrow column.

    With one vote the mean strength is the strength (1 when missing or 0) and agreement is 1,
    so the margin is the strength as a float.
    """
    margins = pc.fill_null(strengths, 1).to_numpy().astype(np.float64)
    margins[margins == 0] = 1.0
    return margins


def _every_vote(votes: PairVotes) -> list[Preference]:
    result: list[Preference] = []
    for winner, wins, strengths, gaps in (
        (votes.low, votes.wins_low, votes.strengths_low, votes.gaps_low),
        (votes.high, votes.wins_high, votes.strengths_high, votes.gaps_high),
    ):
        loser = votes.high if winner == votes.low else votes.low
        agreement = wins / votes.total
        result.extend(
            Preference(winner, loser, votes.total, agreement, _margin(agreement, [strength]), gap)
            for strength, gap in zip(strengths, gaps, strict=True)
        )
    return result


def _margin(agreement: float, strengths: list[int]) -> float:
    """How much better, for RewardTrainer: mean strength (1-3) scaled by vote share. Always finite."""
    mean_strength = sum(strengths) / len(strengths) if strengths else 1.0
    return float(round(mean_strength * agreement, 4))
