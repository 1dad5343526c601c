"""The stats document: agreement, annotator quality, leaderboard, against known answers."""

import random

import krippendorff
import numpy as np
import pytest

from labeling.models import Item, Judgment
from labeling.services import assignment as assignment_service
from labeling.services.assignment import assignment_next
from labeling.services.errors import InvalidInput
from labeling.services.importing import items_import
from labeling.services.judgments import judgment_revise, judgment_submit, ranking_from_choice
from labeling.services.metrics import project_stats
from labeling.services.metrics.agreement import krippendorff_alpha
from labeling.services.metrics.leaderboard import bootstrap_intervals, bradley_terry
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

NAN = float("nan")
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example with
# four coders, twelve units and missing values; published: nominal 0.743, ordinal 0.815,
# interval 0.849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


@pytest.fixture(autouse=True)
def _seeded_screen_sides(monkeypatch):
    """Screen sides are drawn by the assignment service; a seeded generator keeps these
    tests reproducible (the service draws from it exactly as it does in production)."""
    monkeypatch.setattr(assignment_service, "_shuffle", random.Random(7))


def _as_units_and_values(table):
    units, values = [], []
    for coder in table:
        for unit, value in enumerate(coder):
            if value == value:
                units.append(unit)
                values.append(int(value))
    return np.array(units), np.array(values)


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_the_published_worked_example(level, published):
    units, values = _as_units_and_values(KRIPPENDORFF_2011)

    alpha = krippendorff_alpha(units, values, domain=np.arange(1, 6), level=level)

    assert round(alpha, 3) == published


def test_krippendorff_alpha_is_none_without_variation_or_overlap():
    assert (
        krippendorff_alpha(np.array([0, 0, 1, 1]), np.array([1, 1, 1, 1]), domain=np.arange(3), level="nominal") is None
    )
    assert krippendorff_alpha(np.array([0, 1]), np.array([0, 2]), domain=np.arange(3), level="nominal") is None
    assert krippendorff_alpha(np.array([]), np.array([]), domain=np.arange(3), level="nominal") is None


# -- building data through the real services ---------------------------------------


def _members(project, *names):
    return [MembershipFactory(project=project, user__username=name).user for name in names]


def _judge(project, annotator, pick, *, strength=None):
    """Lease the next item and answer it. `pick(assignment, models_by_id)` returns "A", "B" or
    "tie" as seen on this annotator's screen (A = left)."""
    assignment = assignment_next(project=project, annotator=annotator)
    assert assignment is not None
    models = {response.pk: response.model for response in assignment.item.responses.all()}
    choice = pick(assignment, models)
    ranking = ranking_from_choice(assignment=assignment, choice=choice)
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking, strength=strength)
    return judgment


def prefer(model):
    """Pick the response of `model`, whichever side it is on."""

    def pick(assignment, models):
        return "A" if models[assignment.shown_order[0]] == model else "B"

    return pick


def always_left(assignment, models):
    return "A"


def tie(assignment, models):
    return "tie"


def test_alpha_reads_answers_by_response_not_by_screen_side(db):
    project = ProjectFactory(slug="sides", overlap=2)
    first, second = _members(project, "first", "second")
    ItemFactory.create_batch(4, project=project)
    # Per item (model-a is "A": its response has the lower id), as (pick, strength):
    answers = {
        first: [("model-a", 3), ("model-b", 1), (None, None), ("model-a", 2)],
        second: [("model-a", 2), ("model-b", 2), (None, None), ("model-b", 1)],
    }
    for annotator, picks in answers.items():
        for model, strength in picks:
            _judge(project, annotator, prefer(model) if model else tie, strength=strength)
    # Both annotators saw items in the same order (depth-first), so item k is column k.
    signed = {"model-a": -1, "model-b": 1, None: 0}
    ordinal = [[signed[model] * (strength or 1) for model, strength in picks] for picks in answers.values()]
    nominal = [[signed[model] for model, _ in picks] for picks in answers.values()]

    agreement = project_stats(project=project)["agreement"]

    assert agreement["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=nominal, level_of_measurement="nominal", value_domain=[-1, 0, 1]), abs=1e-4
    )
    assert agreement["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff.alpha(reliability_data=ordinal, level_of_measurement="ordinal", value_domain=range(-3, 4)),
        abs=1e-4,
    )
    assert agreement["pairwise"] == 0.75
    assert agreement["units_with_two_or_more_votes"] == 4
    assert {row["split"]: row["units"] for row in agreement["vote_splits"]} == {"2-0": 3, "1-1": 1}


def test_ranking_of_three_responses_counts_each_pair(db, write_jsonl):
    project = ProjectFactory(slug="ranks", overlap=2, mode="ranking")
    row = {"prompt": "Q?", "responses": [{"model": name, "content": f"by {name}"} for name in ("x", "y", "z")]}
    items_import(project=project, path=write_jsonl([{**row, "id": "one"}]))
    for annotator in _members(project, "first", "second"):
        assignment = assignment_next(project=project, annotator=annotator)
        by_model = {response.model: response.pk for response in assignment.item.responses.all()}
        ranking = [[by_model["z"]], [by_model["y"], by_model["x"]]]
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)

    stats = project_stats(project=project)

    assert stats["agreement"]["units"] == 3 and stats["agreement"]["pairwise"] == 1.0
    board = {row["model"]: row for row in stats["leaderboard"]}
    assert (board["z"]["wins"], board["z"]["losses"], board["z"]["ties"]) == (4, 0, 0)
    assert (board["x"]["wins"], board["x"]["losses"], board["x"]["ties"]) == (0, 2, 2)
    assert stats["leaderboard"][0]["model"] == "z"
    assert all(row["left_expected"] == pytest.approx(1 / 3, abs=1e-4) for row in stats["annotators"])
    assert all(row["tie_rate"] == 1.0 for row in stats["annotators"])


def test_agreement_is_with_the_consensus_of_the_others(db):
    project = ProjectFactory(slug="loo", overlap=4)
    ItemFactory.create_batch(3, project=project)
    *agreeing, dissenter = _members(project, "ann", "ben", "cal", "dan")
    for annotator in agreeing:
        for _ in range(3):
            _judge(project, annotator, prefer("model-a"))
    for _ in range(3):
        _judge(project, dissenter, prefer("model-b"))

    rows = {row["username"]: row for row in project_stats(project=project)["annotators"]}

    assert [rows[name]["agreement"] for name in ("ann", "ben", "cal")] == [1.0, 1.0, 1.0]
    assert rows["dan"]["agreement"] == 0.0
    assert rows["dan"]["agreement_compared"] == 3


def test_an_annotator_who_always_picks_the_left_side_is_flagged_position_bias(db):
    project = ProjectFactory(slug="bias", overlap=2)
    ItemFactory.create_batch(30, project=project)
    careful, lefty = _members(project, "careful", "lefty")
    for _ in range(30):
        _judge(project, careful, prefer("model-a"))
        _judge(project, lefty, always_left)
    Judgment.objects.filter(project=project).update(seconds=20.0)

    rows = {row["username"]: row for row in project_stats(project=project)["annotators"]}

    assert rows["lefty"]["left_share"] == 1.0 and rows["lefty"]["left_p_value"] < 1e-6
    assert "position_bias" in rows["lefty"]["flags"]
    assert "position_bias" not in rows["careful"]["flags"]
    assert 0.3 < rows["careful"]["left_share"] < 0.7
    # With two annotators per item each is the other's whole consensus: they agree equally.
    assert rows["careful"]["agreement"] == rows["lefty"]["agreement"]


def test_an_annotator_answering_gold_items_at_random_is_flagged_low_gold_accuracy(db, write_jsonl):
    project = ProjectFactory(slug="gold", overlap=1, gold_rate=1.0)
    rows = [
        {
            "id": f"g{index}",
            "prompt": f"{index}+1?",
            "responses": [str(index + 1), str(index + 2)],
            "gold_answer": [[0], [1]],
        }
        for index in range(40)
    ]
    items_import(project=project, path=write_jsonl(rows))
    careful, guesser = _members(project, "careful", "guesser")
    coin = random.Random(3)
    for _ in range(40):
        _judge(project, careful, _gold_pick(correct=True))
        _judge(project, guesser, lambda assignment, models: coin.choice("AB"))
    Judgment.objects.filter(project=project).update(seconds=20.0)

    annotators = {row["username"]: row for row in project_stats(project=project)["annotators"]}

    assert annotators["careful"]["gold_accuracy"] == 1.0 and annotators["careful"]["flags"] == []
    assert 0.3 < annotators["guesser"]["gold_accuracy"] < 0.7
    assert annotators["guesser"]["gold_compared"] == 40
    assert "low_gold_accuracy" in annotators["guesser"]["flags"]


def _gold_pick(*, correct: bool):
    def pick(assignment, models):
        position = {response.pk: response.position for response in assignment.item.responses.all()}
        left_is_answer = position[assignment.shown_order[0]] == 0
        return "A" if left_is_answer == correct else "B"

    return pick


def test_fast_annotators_are_flagged_too_fast(db):
    project = ProjectFactory(slug="fast", overlap=2)
    ItemFactory.create_batch(12, project=project)
    slow, quick = _members(project, "slow", "quick")
    for _ in range(12):
        _judge(project, slow, prefer("model-a"))
        _judge(project, quick, prefer("model-a"))
    Judgment.objects.filter(annotator=slow).update(seconds=25.0)
    Judgment.objects.filter(annotator=quick).update(seconds=1.5)

    rows = {row["username"]: row for row in project_stats(project=project)["annotators"]}

    assert rows["quick"]["median_seconds"] == 1.5 and rows["quick"]["flags"] == ["too_fast"]
    assert rows["slow"]["flags"] == []


def test_consensus_is_compared_with_the_imported_reference(db, write_jsonl):
    project = ProjectFactory(slug="reference", overlap=2)
    rows = [
        {"id": f"r{index}", "prompt": f"Q{index}?", "chosen": f"good {index}", "rejected": f"bad {index}"}
        for index in range(4)
    ]
    items_import(project=project, path=write_jsonl(rows))
    first, second = _members(project, "first", "second")

    def pick_content(word):
        def pick(assignment, models):
            left = assignment.item.responses.get(pk=assignment.shown_order[0])
            return "A" if left.content.startswith(word) else "B"

        return pick

    # Items 0-2: both pick the chosen answer; item 3: both pick the rejected one.
    for annotator in (first, second):
        for index in range(4):
            _judge(project, annotator, pick_content("good" if index < 3 else "bad"))

    agreement = project_stats(project=project)["agreement"]

    assert Item.objects.filter(project=project, reference__isnull=False).count() == 4
    assert agreement["with_reference"] == 0.75


# -- leaderboard ---------------------------------------------------------------------

TRUE_SCORES = np.array([1200.0, 1100.0, 1000.0, 950.0, 750.0])  # mean 1000, as the fit centres it


def _tournament(seed: int, games: int = 300):
    """Every pair of models plays `games` games, won with the Bradley-Terry probability."""
    rng = np.random.default_rng(seed)
    size = len(TRUE_SCORES)
    wins = np.zeros((size, size))
    for first in range(size):
        for second in range(first + 1, size):
            p_first = 1 / (1 + 10 ** ((TRUE_SCORES[second] - TRUE_SCORES[first]) / 400))
            won = rng.binomial(games, p_first)
            wins[first, second], wins[second, first] = won, games - won
    return wins, np.zeros((size, size))


def test_bradley_terry_recovers_known_strengths_with_intervals_covering_them():
    # Over 30 seeds of this tournament, 95% of the intervals covered the true score.
    wins, ties = _tournament(seed=0)

    scores = bradley_terry(wins, ties)
    low, high = bootstrap_intervals(wins, ties)

    assert list(np.argsort(-scores)) == [0, 1, 2, 3, 4]
    assert np.abs(scores - TRUE_SCORES).max() < 25
    assert ((low <= TRUE_SCORES) & (high >= TRUE_SCORES)).all()
    assert ((high - low) < 80).all()


def test_bootstrap_intervals_are_reproducible():
    wins, ties = _tournament(seed=1)

    first, second = bootstrap_intervals(wins, ties), bootstrap_intervals(wins, ties)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_ties_count_as_half_wins_or_are_dropped():
    wins = np.array([[0.0, 10.0], [0.0, 0.0]])
    ties = np.array([[0.0, 10.0], [10.0, 0.0]])

    half = bradley_terry(wins, ties, ties_policy="half")
    dropped = bradley_terry(wins, ties, ties_policy="drop")

    # Half: 15 of 20 won, odds 3 (a prior of about one game pulls slightly to even).
    assert half[0] - half[1] == pytest.approx(400 * np.log10(3), abs=15)
    assert dropped[0] - dropped[1] > half[0] - half[1]
    assert half.mean() == pytest.approx(1000)


def test_leaderboard_from_judgments_orders_models_and_gives_win_rates(db, write_jsonl):
    project = ProjectFactory(slug="arena", overlap=1)
    pairs = [("strong", "middle"), ("middle", "weak"), ("strong", "weak")] * 6
    rows = [
        {
            "id": f"i{index}",
            "prompt": f"Q{index}?",
            "responses": [{"model": a, "content": f"{a} {index}"}, {"model": b, "content": f"{b} {index}"}],
        }
        for index, (a, b) in enumerate(pairs)
    ]
    items_import(project=project, path=write_jsonl(rows))
    (annotator,) = _members(project, "judge")
    rank = {"strong": 0, "middle": 1, "weak": 2}

    def pick(assignment, models):
        """The better model wins, except that every other middle-weak game is a tie."""
        left, right = (models[pk] for pk in assignment.shown_order)
        if {left, right} == {"middle", "weak"} and int(assignment.item.external_id[1:]) % 2:
            return "tie"
        return "A" if rank[left] < rank[right] else "B"

    for _ in pairs:
        _judge(project, annotator, pick)

    stats = project_stats(project=project)

    board = stats["leaderboard"]
    assert [row["model"] for row in board] == ["strong", "middle", "weak"]
    assert all(set(row) >= {"model", "score", "ci_low", "ci_high", "wins", "losses", "ties"} for row in board)
    assert all(row["ci_low"] <= row["score"] <= row["ci_high"] for row in board)
    assert (board[0]["wins"], board[0]["losses"], board[0]["ties"]) == (12, 0, 0)
    matrix = stats["win_rates"]
    assert matrix["models"] == ["strong", "middle", "weak"]
    assert matrix["win_rate"][0][1] == 1.0 and matrix["win_rate"][1][0] == 0.0
    assert matrix["win_rate"][1][2] == (3 + 1.5) / 6
    assert matrix["win_rate"][0][0] is None and matrix["games"][1][2] == 6
    assert stats["leaderboard_method"]["resamples"] > 0


# -- the document as a whole ---------------------------------------------------------


def test_an_empty_project_has_nulls_and_empty_lists(db):
    project = ProjectFactory(slug="empty")

    stats = project_stats(project=project)

    assert (stats["items"], stats["items_complete"], stats["judgments"]) == (0, 0, 0)
    assert stats["agreement"]["krippendorff_alpha"] is None and stats["agreement"]["pairwise"] is None
    assert stats["agreement"]["with_reference"] is None
    assert stats["annotators"] == [] and stats["leaderboard"] == [] and stats["judgments_per_day"] == []


def test_one_annotator_gives_counts_but_no_agreement(db, project, annotator, items):
    for _ in range(3):
        _judge(project, annotator, prefer("model-a"))

    stats = project_stats(project=project)

    assert stats["judgments"] == 3 and stats["agreement"]["krippendorff_alpha"] is None
    (row,) = stats["annotators"]
    assert row["agreement"] is None and row["gold_accuracy"] is None and row["judgments"] == 3
    assert stats["judgments_per_day"][0]["judgments"] == 3


def test_new_and_revised_judgments_show_at_once(
    db, project, annotator, second_annotator, items, django_assert_max_num_queries
):
    first = _judge(project, annotator, prefer("model-a"))
    before = project_stats(project=project)
    # Served from the stored document: the two counting queries and the document's row.
    with django_assert_max_num_queries(3):
        assert project_stats(project=project) == before

    _judge(project, second_annotator, prefer("model-a"))
    after = project_stats(project=project)
    assert after["judgments"] == 2 and len(after["annotators"]) == 2
    assert after["agreement"]["pairwise"] == 1.0

    judgment_revise(judgment=first, annotator=annotator, ranking=first.ranking[::-1])
    assert project_stats(project=project)["agreement"]["pairwise"] == 0.0


def test_unknown_tie_policy_is_refused(db, project):
    with pytest.raises(InvalidInput, match="`ties` must be one of half, drop"):
        project_stats(project=project, ties="third")


def test_model_names_with_commas_quotes_and_new_lines_come_back_whole(db, write_jsonl):
    project = ProjectFactory(slug="names", overlap=1)
    odd = ['gpt "4", turbo', "line\nbreak", ""]
    rows = [
        {"id": f"n{index}", "prompt": "Q?", "responses": [{"model": a, "content": "x"}, {"model": b, "content": "y"}]}
        for index, (a, b) in enumerate([(odd[0], odd[1]), (odd[1], odd[2])])
    ]
    items_import(project=project, path=write_jsonl(rows))
    (annotator,) = _members(project, "judge")
    for _ in rows:
        _judge(project, annotator, always_left)

    models = {row["model"] for row in project_stats(project=project)["leaderboard"]}

    assert models == {'gpt "4", turbo', "line\nbreak", "unknown"}
