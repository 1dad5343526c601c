import pytest

from labeling.models import Item, Judgment
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.errors import Conflict, InvalidInput, NotFound
from labeling.services.judgments import judgment_submit, ranking_from_choice


@pytest.fixture
def assignment(project, annotator, items):
    return assignment_next(project=project, annotator=annotator)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("A", "left-right"), ("1", "left-right"), ("b", "right-left"), ("2", "right-left"), ("tie", "tie"), ("T", "tie")],
)
def test_choice_maps_to_a_ranking_of_what_was_shown(assignment, choice, expected):
    left, right = assignment.shown_order
    ranking = ranking_from_choice(assignment=assignment, choice=choice)
    assert (
        ranking == {"left-right": [[left], [right]], "right-left": [[right], [left]], "tie": [[left, right]]}[expected]
    )


def test_unknown_choice_is_refused(assignment):
    with pytest.raises(InvalidInput, match="Choose A, B or tie"):
        ranking_from_choice(assignment=assignment, choice="C")


def test_submit_stores_the_judgment_and_completes_the_vote(assignment, annotator):
    left, right = assignment.shown_order
    judgment, created = judgment_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        ranking=[[str(right)], [str(left)]],
        strength=2,
        rationale=" ok ",
    )
    assert created
    assert judgment.ranking == [[right], [left]]
    assert judgment.strength == 2 and judgment.rationale == "ok"
    assert judgment.seconds is not None and judgment.seconds >= 0
    item = Item.objects.get(pk=assignment.item_id)
    assert item.votes == 1 and item.filled == 1 and not item.is_complete  # overlap 2


def test_double_submit_stores_one_judgment(assignment, annotator):
    ranking = ranking_from_choice(assignment=assignment, choice="A")
    first, created_first = judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    second, created_second = judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    assert created_first and not created_second
    assert first.pk == second.pk
    assert Judgment.objects.count() == 1
    assert Item.objects.get(pk=assignment.item_id).votes == 1


@pytest.mark.parametrize(
    ("ranking", "message"),
    [
        ([], "non-empty list"),
        ([["999999"]], "does not belong"),
        ([["x"]], "not a response id"),
        ("A", "non-empty list"),
        ([[]], "non-empty list of response ids"),
    ],
)
def test_bad_rankings_are_refused_and_change_nothing(assignment, annotator, ranking, message):
    with pytest.raises(InvalidInput, match=message):
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    assert Judgment.objects.count() == 0
    assert Item.objects.get(pk=assignment.item_id).votes == 0


def test_ranking_must_place_every_response_once(assignment, annotator):
    left, right = assignment.shown_order
    with pytest.raises(InvalidInput, match="all 2 responses"):
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=[[left]])
    with pytest.raises(InvalidInput, match="more than once"):
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=[[left], [left, right]])


def test_strength_out_of_range_is_refused(assignment, annotator):
    with pytest.raises(InvalidInput, match="strength"):
        judgment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            ranking=ranking_from_choice(assignment=assignment, choice="A"),
            strength=7,
        )


def test_someone_elses_assignment_is_not_found(assignment, second_annotator):
    with pytest.raises(NotFound):
        judgment_submit(
            assignment_id=assignment.pk,
            annotator=second_annotator,
            ranking=ranking_from_choice(assignment=assignment, choice="A"),
        )


def test_skipped_assignment_cannot_be_judged(assignment, annotator):
    assignment_skip(assignment=assignment, annotator=annotator)
    with pytest.raises(Conflict, match="skipped"):
        judgment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            ranking=ranking_from_choice(assignment=assignment, choice="A"),
        )
