"""Rankings (groups of response ids, best first) read as pairwise outcomes."""

from itertools import combinations


def pair_outcomes(ranking: list[list[int]]):
    """Yield (better, worse, tied) for every pair of responses in a ranking."""
    rank_of = {pk: index for index, group in enumerate(ranking) for pk in group}
    for first, second in combinations(sorted(rank_of), 2):
        if rank_of[first] == rank_of[second]:
            yield first, second, True
        elif rank_of[first] < rank_of[second]:
            yield first, second, False
        else:
            yield second, first, False
