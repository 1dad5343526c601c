"""Rankings (groups of response ids or positions, best first): made from rank numbers,
and read as ranks or as pairwise outcomes."""

from collections.abc import Callable, Mapping
from itertools import combinations

from labeling.services.errors import InvalidInput


def rank_of(ranking: list[list[int]] | None, *, start: int = 0) -> dict[int, int]:
    """Each member's rank: its group's index, from `start` (tied members share one)."""
    return {member: rank for rank, group in enumerate(ranking or [], start=start) for member in group}


def ranking_from_numbers(
    numbers: Mapping[int, str | int] | Mapping[str, str | int], *, count: int, name: Callable = lambda key: ""
) -> list[list[int]]:
    """Rank numbers per member (a response id or position; 1 = best, equal numbers tie) as a
    ranking, best first. `name` says which entry an error is about ("Response 2: " or nothing).
    """
    by_rank: dict[int, list[int]] = {}
    for key, rank in numbers.items():
        prefix = name(key)
        try:
            number = int(rank)
        except (TypeError, ValueError):
            raise InvalidInput(f"{prefix}{'r' if prefix else 'R'}ank {rank!r} is not a whole number.") from None
        if not 1 <= number <= count:
            raise InvalidInput(f"{prefix}{'r' if prefix else 'R'}anks go from 1 to {count} (got {number}).")
        by_rank.setdefault(number, []).append(int(key))
    return [sorted(members) for _, members in sorted(by_rank.items())]


def pair_outcomes(ranking: list[list[int]]):
    """Yield (better, worse, tied) for every pair of responses in a ranking."""
    ranks = rank_of(ranking)
    for first, second in combinations(sorted(ranks), 2):
        if ranks[first] == ranks[second]:
            yield first, second, True
        elif ranks[first] < ranks[second]:
            yield first, second, False
        else:
            yield second, first, False
