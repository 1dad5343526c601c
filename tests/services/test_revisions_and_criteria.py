"""Criteria (definitions and answers), ranks to rankings, revisions that keep every
version, and skip reasons: the rules the annotate page relies on."""

import pytest
from django.utils import timezone

from labeling.models import Assignment, Item, Judgment, JudgmentRevision
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.criteria import criteria_answers_validate, criteria_definitions_validate
from labeling.services.errors import Conflict, InvalidInput, NotFound
from labeling.services.judgments import judgment_revise, judgment_submit, ranking_from_ranks
from tests.factories import ItemFactory

CRITERIA = [
    {"key": "helpful", "label": "Helpfulness", "type": "likert", "required": True},
    {"key": "unsafe", "type": "flag"},
    {"key": "note", "label": "Note", "type": "text"},
]


@pytest.fixture
def assignment(project, annotator, items):
    return assignment_next(project=project, annotator=annotator)


@pytest.fixture
def ranked_assignment(project, annotator):
    """An assignment of an item with four responses."""
    ItemFactory(project=project, responses=["one", "two", "three", "four"])
    return assignment_next(project=project, annotator=annotator)


@pytest.fixture
def with_criteria(project):
    project.criteria = criteria_definitions_validate(CRITERIA)
    project.save(update_fields=["criteria"])
    return project


def nothing_stored(assignment: Assignment) -> bool:
    assignment.refresh_from_db()
    item = Item.objects.get(pk=assignment.item_id)
    return not Judgment.objects.exists() and assignment.state == Assignment.State.ACTIVE and item.votes == 0


# ---- criteria definitions ---------------------------------------------------------------


def test_definitions_are_normalized_with_defaults():
    assert criteria_definitions_validate(CRITERIA) == [
        {"key": "helpful", "label": "Helpfulness", "type": "likert", "per_response": True, "required": True},
        {"key": "unsafe", "label": "Unsafe", "type": "flag", "per_response": True, "required": False},
        {"key": "note", "label": "Note", "type": "text", "per_response": False, "required": False},
    ]
    assert criteria_definitions_validate(None) == [] and criteria_definitions_validate("") == []


@pytest.mark.parametrize(
    ("definitions", "message"),
    [
        (
            [{"key": "Bad Key", "type": "flag"}],
            r"criteria\[0\]\.key must be lowercase letters, digits or _ \(got 'Bad Key'\)",
        ),
        ([{"key": "1st", "type": "flag"}], r"criteria\[0\]\.key must be lowercase"),
        ([{"type": "flag"}], r"criteria\[0\]\.key must be lowercase .*got None"),
        ([{"key": "stars", "type": "stars"}], r"criteria\[0\]\.type must be one of likert, flag, text \(got 'stars'\)"),
        ([{"key": "safe"}], r"criteria\[0\]\.type must be one of .*got None"),
        (
            [{"key": "clarity", "type": "likert"}, {"key": "clarity", "type": "flag"}],
            r"criteria\[1\]\.key 'clarity' is used twice",
        ),
        ([{"key": "ok", "type": "flag", "label": "x" * 201}], r"criteria\[0\]\.label must be text of at most 200"),
        (["helpful"], r"criteria\[0\] must be an object"),
        ({"key": "helpful"}, "Criteria must be a list"),
    ],
)
def test_bad_definitions_are_refused_naming_the_entry_and_field(definitions, message):
    with pytest.raises(InvalidInput, match=message):
        criteria_definitions_validate(definitions)


# ---- criteria answers -------------------------------------------------------------------


def test_valid_answers_are_stored_normalized(with_criteria, assignment, annotator):
    left, right = assignment.shown_order
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        ranking=[[left], [right]],
        criteria={"helpful": {left: "4", str(right): 2}, "unsafe": {right: "on"}, "note": "  fine  "},
    )
    assert judgment.criteria == {"helpful": {str(left): 4, str(right): 2}, "unsafe": {str(right): True}, "note": "fine"}


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (
            lambda left, right: {"helpful": {left: 6, right: 3}},
            r"'Helpfulness' takes a whole number from 1 to 5 \(got 6\)",
        ),
        (lambda left, right: {"helpful": {left: 0, right: 3}}, r"from 1 to 5 \(got 0\)"),
        (lambda left, right: {"helpful": {left: 2.5, right: 3}}, r"from 1 to 5 \(got 2.5\)"),
        (lambda left, right: {"helpful": {left: float("inf"), right: 3}}, r"from 1 to 5 \(got inf\)"),
        (lambda left, right: {"helpful": {left: "lots", right: 3}}, r"from 1 to 5 \(got 'lots'\)"),
        (lambda left, right: {"helpful": {left: 3, right: 3}, "tone": 2}, r"Unknown criteria: tone\."),
        (
            lambda left, right: {"helpful": {left: 3, right: 3, 999_999: 5}},
            r"'Helpfulness' names response 999999, which is not in this item",
        ),
        (lambda left, right: {"helpful": {left: 3}}, r"Answer 'Helpfulness' for every response: it is required"),
        (lambda left, right: {"unsafe": {left: True}}, r"Answer 'Helpfulness': it is required"),
        (lambda left, right: {"helpful": 4}, r"'Helpfulness' must be answered per response"),
        (lambda left, right: {"helpful": {left: 3, right: 3}, "unsafe": {left: "maybe"}}, r"'Unsafe' is yes or no"),
        (lambda left, right: {"helpful": {left: 3, right: 3}, "note": "x" * 2001}, r"'Note' is too long"),
        (lambda left, right: ["helpful"], r"`criteria` must be an object"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_stored(with_criteria, assignment, annotator, answers, message):
    left, right = assignment.shown_order
    with pytest.raises(InvalidInput, match=message):
        judgment_submit(
            assignment_id=assignment.pk, annotator=annotator, ranking=[[left], [right]], criteria=answers(left, right)
        )
    assert nothing_stored(assignment)


def test_a_response_of_another_item_is_foreign_even_when_it_exists(with_criteria, assignment, annotator, items):
    left, right = assignment.shown_order
    foreign = next(item for item in items if item.pk != assignment.item_id).responses.first().pk
    with pytest.raises(InvalidInput, match=rf"names response {foreign}, which is not in this item"):
        judgment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            ranking=[[left], [right]],
            criteria={"helpful": {left: 3, right: 3, foreign: 1}},
        )
    assert nothing_stored(assignment)


def test_item_level_required_text_must_be_answered():
    definitions = criteria_definitions_validate([{"key": "why", "label": "Why", "type": "text", "required": True}])
    with pytest.raises(InvalidInput, match="Answer 'Why': it is required"):
        criteria_answers_validate(definitions=definitions, answers={"why": "   "}, response_ids=[1, 2])
    assert criteria_answers_validate(definitions=definitions, answers={"why": " ok "}, response_ids=[1, 2]) == {
        "why": "ok"
    }


# ---- ranks to rankings ------------------------------------------------------------------


def test_ranks_become_a_ranking_best_first_with_ties_grouped(ranked_assignment):
    a, b, c, d = ranked_assignment.shown_order
    ranks = {str(a): "2", str(b): "1", str(c): "2", str(d): "4"}
    assert ranking_from_ranks(assignment=ranked_assignment, ranks=ranks) == [[b], sorted([a, c]), [d]]


def test_gaps_between_ranks_only_order_the_groups(ranked_assignment):
    a, b, c, d = ranked_assignment.shown_order
    ranks = {str(a): 4, str(b): 1, str(c): 4, str(d): 3}
    assert ranking_from_ranks(assignment=ranked_assignment, ranks=ranks) == [[b], [d], sorted([a, c])]


def test_all_equal_ranks_are_one_tie(ranked_assignment):
    ids = ranked_assignment.shown_order
    assert ranking_from_ranks(assignment=ranked_assignment, ranks=dict.fromkeys(map(str, ids), "1")) == [sorted(ids)]


@pytest.mark.parametrize(
    ("ranks", "message"),
    [
        ([1, 2, 3, 5], r"Ranks go from 1 to 4 \(got 5\)"),
        ([0, 1, 2, 3], r"Ranks go from 1 to 4 \(got 0\)"),
        ([1, 2, 3, -1], r"Ranks go from 1 to 4 \(got -1\)"),
        ([1, 2, 3, "first"], r"Rank 'first' is not a whole number"),
        ([1, 2, 3, None], r"Rank None is not a whole number"),
        ([1, 2, 3], r"Give every one of the 4 responses a rank"),
    ],
)
def test_bad_ranks_are_refused(ranked_assignment, ranks, message):
    ids = ranked_assignment.shown_order
    with pytest.raises(InvalidInput, match=message):
        ranking_from_ranks(
            assignment=ranked_assignment, ranks={str(pk): rank for pk, rank in zip(ids, ranks, strict=False)}
        )


def test_a_ranking_from_ranks_is_stored_as_given(ranked_assignment, annotator):
    a, b, c, d = ranked_assignment.shown_order
    ranking = ranking_from_ranks(assignment=ranked_assignment, ranks={str(a): 3, str(b): 3, str(c): 1, str(d): 2})
    judgment, _ = judgment_submit(assignment_id=ranked_assignment.pk, annotator=annotator, ranking=ranking, strength=2)
    assert judgment.ranking == [[c], [d], sorted([a, b])]
    assert judgment.strength == 2


# ---- ties -------------------------------------------------------------------------------


def test_a_tie_stores_no_strength(assignment, annotator):
    left, right = assignment.shown_order
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=[[left, right]], strength=3)
    assert judgment.strength is None
    assert Judgment.objects.get().strength is None


def test_revising_to_a_tie_drops_the_strength(assignment, annotator):
    left, right = assignment.shown_order
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=[[left], [right]], strength=3
    )
    revised = judgment_revise(judgment=judgment, annotator=annotator, ranking=[[right, left]], strength=2)
    assert revised.strength is None
    assert JudgmentRevision.objects.get().strength == 3


# ---- revisions --------------------------------------------------------------------------


@pytest.fixture
def judged(assignment, annotator):
    left, right = assignment.shown_order
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=[[left], [right]], strength=1, rationale="first look"
    )
    return judgment


def test_revising_twice_keeps_every_earlier_version(judged, annotator):
    left, right = judged.assignment.shown_order
    first_stored_at = judged.updated_at

    second = judgment_revise(
        judgment=judged, annotator=annotator, ranking=[[right], [left]], strength=2, both_bad=True, rationale="B"
    )
    third = judgment_revise(judgment=second, annotator=annotator, ranking=[[left, right]], rationale="same")

    judgment = Judgment.objects.get()
    assert third.pk == judged.pk == judgment.pk
    assert (judgment.revision, judgment.ranking, judgment.strength, judgment.both_bad, judgment.rationale) == (
        3,
        [[left, right]],
        None,
        False,
        "same",
    )
    versions = list(JudgmentRevision.objects.filter(judgment=judgment).order_by("revision"))
    assert [(v.revision, v.ranking, v.strength, v.both_bad, v.rationale) for v in versions] == [
        (1, [[left], [right]], 1, False, "first look"),
        (2, [[right], [left]], 2, True, "B"),
    ]
    assert versions[0].made_at == first_stored_at


def test_a_stale_copy_of_the_judgment_still_keeps_every_version(judged, annotator):
    """Two revisions from the same stale page: the lock re-reads, so neither version is lost."""
    left, right = judged.assignment.shown_order
    judgment_revise(judgment=judged, annotator=annotator, ranking=[[right], [left]])
    judgment_revise(judgment=judged, annotator=annotator, ranking=[[left, right]])
    assert list(JudgmentRevision.objects.order_by("revision").values_list("revision", "ranking")) == [
        (1, [[left], [right]]),
        (2, [[right], [left]]),
    ]
    assert Judgment.objects.get().revision == 3


def test_revisions_do_not_move_the_vote_counters(judged, annotator):
    left, right = judged.assignment.shown_order
    before = Item.objects.values("votes", "filled", "target", "is_complete").get(pk=judged.item_id)
    judgment_revise(judgment=judged, annotator=annotator, ranking=[[right], [left]])
    judgment_revise(judgment=judged, annotator=annotator, ranking=[[left, right]])
    assert Item.objects.values("votes", "filled", "target", "is_complete").get(pk=judged.item_id) == before
    assert Judgment.objects.count() == 1
    assert Assignment.objects.get(pk=judged.assignment_id).state == Assignment.State.SUBMITTED


def test_revise_is_refused_on_an_archived_project(judged, annotator, project):
    project.archived_at = timezone.now()
    project.save(update_fields=["archived_at"])
    left, right = judged.assignment.shown_order
    with pytest.raises(Conflict, match="archived"):
        judgment_revise(judgment=judged, annotator=annotator, ranking=[[right], [left]])
    judged.refresh_from_db()
    assert judged.revision == 1 and judged.ranking == [[left], [right]]
    assert not JudgmentRevision.objects.exists()


def test_another_annotator_cannot_revise_my_judgment(judged, second_annotator, manager):
    left, right = judged.assignment.shown_order
    for someone_else in (second_annotator, manager):
        with pytest.raises(NotFound):
            judgment_revise(judgment=judged, annotator=someone_else, ranking=[[right], [left]])
    judged.refresh_from_db()
    assert judged.revision == 1 and judged.ranking == [[left], [right]]
    assert not JudgmentRevision.objects.exists()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"ranking": [[1]]}, InvalidInput),
        ({"ranking": "A"}, InvalidInput),
        ({"strength": 4}, InvalidInput),
        ({"rationale": "x" * 10_001}, InvalidInput),
        ({"criteria": {"tone": 1}}, InvalidInput),
    ],
)
def test_an_invalid_revision_changes_nothing(judged, annotator, change, error):
    left, right = judged.assignment.shown_order
    fields = {"ranking": [[right], [left]], **change}
    with pytest.raises(error):
        judgment_revise(judgment=judged, annotator=annotator, **fields)
    judged.refresh_from_db()
    assert judged.revision == 1 and judged.ranking == [[left], [right]] and judged.rationale == "first look"
    assert not JudgmentRevision.objects.exists()


def test_a_revision_must_keep_a_required_rationale(judged, annotator, project):
    project.rationale_required = True
    project.save(update_fields=["rationale_required"])
    left, right = judged.assignment.shown_order
    with pytest.raises(InvalidInput, match="This project asks for a rationale"):
        judgment_revise(judgment=judged, annotator=annotator, ranking=[[right], [left]], rationale="  ")
    assert not JudgmentRevision.objects.exists()


# ---- skip reasons -----------------------------------------------------------------------


def test_skip_with_a_reason_outside_the_projects_list_is_refused(project, assignment, annotator):
    project.skip_reasons = ["Off-topic", "Needs expertise"]
    project.save(update_fields=["skip_reasons"])
    assignment.project.refresh_from_db()
    for reason in ("", "Bored", "off-topic"):
        with pytest.raises(InvalidInput, match="Choose a reason for skipping: Off-topic, Needs expertise"):
            assignment_skip(assignment=assignment, annotator=annotator, reason=reason)
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.ACTIVE and assignment.skip_reason == ""
    assert Item.objects.get(pk=assignment.item_id).filled == 1


def test_skip_with_a_listed_reason_records_it(project, assignment, annotator):
    project.skip_reasons = ["Off-topic", "Needs expertise"]
    project.save(update_fields=["skip_reasons"])
    assignment.project.refresh_from_db()
    skipped = assignment_skip(assignment=assignment, annotator=annotator, reason=" Needs expertise ")
    assert skipped.state == Assignment.State.SKIPPED and skipped.skip_reason == "Needs expertise"
    assert Assignment.objects.get(pk=assignment.pk).skip_reason == "Needs expertise"


def test_without_a_list_any_reason_or_none_is_accepted(assignment, annotator):
    skipped = assignment_skip(assignment=assignment, annotator=annotator, reason="too long to read")
    assert skipped.skip_reason == "too long to read"
