"""Services behind the manager's console: settings and their locks, archiving, items."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling.access import project_for_manager
from labeling.models import Assignment, Item, Judgment, Response
from labeling.services.assignment import assignment_next
from labeling.services.errors import Conflict, InvalidInput
from labeling.services.items import (
    gold_answer_from_labels,
    gold_answer_from_ranks,
    item_gold_set,
    item_priority_set,
    item_restore,
    item_withdraw,
    items_page,
    items_search,
    plain_excerpt,
    ranking_label,
)
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.projects import (
    project_archive,
    project_create,
    project_locks,
    project_reopen,
    project_update,
)
from tests.factories import ItemFactory, MembershipFactory

CRITERIA = [{"key": "helpful", "label": "Helpful", "type": "likert"}]


def _judge(project, annotator, choice=None):
    """Judge the next item; without a choice, prefer model-a's response (so annotators agree)."""
    assignment = assignment_next(project=project, annotator=annotator)
    if choice is None:
        left_model = Response.objects.get(pk=assignment.shown_order[0]).model
        choice = "A" if left_model == "model-a" else "B"
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        ranking=ranking_from_choice(assignment=assignment, choice=choice),
    )
    return judgment


# -- access ---------------------------------------------------------------------


def test_project_for_manager_answers_manager_annotator_and_outsider(project, manager, annotator, outsider):
    assert project_for_manager(manager, project.slug) == project
    with pytest.raises(PermissionDenied):
        project_for_manager(annotator, project.slug)
    with pytest.raises(Http404):
        project_for_manager(outsider, project.slug)
    with pytest.raises(Http404):
        project_for_manager(manager, "no-such-project")


# -- settings and their locks ---------------------------------------------------------


def test_every_setting_may_change_before_any_judgment(project, items):
    updated = project_update(
        project=project,
        title="Renamed",
        mode="ranking",
        overlap=1,
        criteria=CRITERIA,
        skip_reasons=["Unreadable", " Offensive "],
        lease_seconds=60,
        order="breadth-first",
        rationale_required=True,
        license="mit",
    )
    assert (updated.title, updated.mode, updated.overlap, updated.lease_seconds) == ("Renamed", "ranking", 1, 60)
    assert updated.skip_reasons == ["Unreadable", "Offensive"]
    assert updated.criteria[0]["per_response"] is True
    assert set(Item.objects.filter(project=project).values_list("target", flat=True)) == {1}
    assert project_locks(project=project) == {}


def test_settings_left_out_keep_their_values(project):
    project_update(project=project, guidelines="New *rules*")
    project.refresh_from_db()
    assert project.guidelines == "New *rules*" and project.overlap == 2 and project.title == "Alpha"


def test_mode_is_locked_once_judgments_exist(project, items, annotator):
    _judge(project, annotator)
    assert "mode" in project_locks(project=project)
    with pytest.raises(InvalidInput, match=r"locked because 1 judgment already exists: the mode cannot change"):
        project_update(project=project, mode="ranking")
    project.refresh_from_db()
    assert project.mode == "pairwise"


def test_overlap_may_go_up_but_not_down_once_judged(project, items, annotator, second_annotator):
    _judge(project, annotator)
    _judge(project, second_annotator)  # overlap 2: the first item now has its two votes
    complete = Item.objects.get(project=project, is_complete=True)
    with pytest.raises(InvalidInput, match=r"overlap may only go up \(from 2, got 1\)"):
        project_update(project=project, overlap=1)
    project_update(project=project, overlap=3)
    complete.refresh_from_db()
    assert complete.target == 3 and not complete.is_complete  # reopened for its third vote
    assert set(Item.objects.filter(project=project).values_list("target", flat=True)) == {3}


def test_fixed_and_adaptive_overlap_cannot_be_swapped_once_judged(project, items, annotator):
    _judge(project, annotator)
    with pytest.raises(InvalidInput, match="fixed and adaptive overlap cannot be swapped"):
        project_update(project=project, min_votes=2, max_votes=3)


def test_adaptive_votes_may_only_go_up_and_raising_min_reopens_items(db):
    project = project_create(slug="adaptive", min_votes=2, max_votes=3)
    annotators = [MembershipFactory(project=project).user for _ in range(2)]
    item = ItemFactory(project=project)
    for annotator in annotators:
        _judge(project, annotator)
    item.refresh_from_db()
    assert item.is_complete  # the two agreed
    with pytest.raises(InvalidInput, match="min votes may only go up"):
        project_update(project=project, min_votes=1)
    with pytest.raises(InvalidInput, match="max votes may only go up"):
        project_update(project=project, max_votes=2)
    project_update(project=project, min_votes=3, max_votes=4)
    item.refresh_from_db()
    assert item.target == 3 and not item.is_complete


def test_criteria_keep_key_and_type_once_judged_but_may_be_relabelled_and_added(project, items, annotator):
    project_update(project=project, criteria=CRITERIA)
    _judge(project, annotator)
    with pytest.raises(InvalidInput, match="criterion 'helpful' cannot be removed"):
        project_update(project=project, criteria=[])
    with pytest.raises(InvalidInput, match="criterion 'helpful' must stay likert, asked per response"):
        project_update(project=project, criteria=[{"key": "helpful", "type": "flag"}])
    with pytest.raises(InvalidInput, match="must stay likert"):
        project_update(project=project, criteria=[{"key": "helpful", "type": "likert", "per_response": False}])
    relabelled = [{**CRITERIA[0], "label": "How helpful?"}, {"key": "notes", "type": "text"}]
    updated = project_update(project=project, criteria=relabelled)
    assert [entry["label"] for entry in updated.criteria] == ["How helpful?", "Notes"]


def test_every_refused_change_is_named_and_nothing_changes(project, items, annotator):
    project_update(project=project, criteria=CRITERIA)
    _judge(project, annotator)
    with pytest.raises(InvalidInput) as refused:
        project_update(project=project, title="Changed", mode="ranking", overlap=1, criteria=[])
    assert all(part in refused.value.message for part in ("mode", "overlap", "'helpful'"))
    project.refresh_from_db()
    assert project.title == "Alpha"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"criteria": [{"key": "Bad Key", "type": "likert"}]}, r"criteria\[0\]\.key"),
        ({"criteria": {"not": "a list"}}, "must be a list"),
        ({"lease_seconds": 3}, "at least 10 seconds"),
        ({"overlap": 0}, "at least 1"),
        ({"min_votes": 3, "max_votes": 2}, "min votes <= max votes"),
        ({"min_votes": 2}, "needs both"),
        ({"gold_rate": 2.0}, "between 0 and 1"),
        ({"title": "  "}, "needs a title"),
        ({"license": "x" * 65}, "license"),  # empty is allowed: not set
        ({"skip_reasons": ["same", "same"]}, "listed twice"),
        ({"mode": "thumbs"}, "Mode 'thumbs' is unknown"),
    ],
)
def test_invalid_settings_are_refused_with_the_field_named(project, changes, message):
    with pytest.raises(InvalidInput, match=message):
        project_update(project=project, **changes)


def test_archive_stops_work_and_reopen_resumes_it(project, items, annotator):
    archived = project_archive(project=project)
    assert archived.archived_at is not None
    assert project_archive(project=project).archived_at == archived.archived_at  # idempotent
    assert assignment_next(project=project, annotator=annotator) is None
    project_reopen(project=project)
    assert project.archived_at is None
    assert assignment_next(project=project, annotator=annotator) is not None


# -- items ----------------------------------------------------------------------


def test_a_withdrawn_item_is_handed_out_no_more_and_its_judgments_stay(project, annotator, second_annotator):
    item = ItemFactory(project=project)
    judgment = _judge(project, annotator)
    held = assignment_next(project=project, annotator=second_annotator)
    assert held.item_id == item.pk
    item_withdraw(item=item)
    item.refresh_from_db()
    assert item.withdrawn_at is not None and item.filled == 1  # the one vote; the live lease was released
    held.refresh_from_db()
    assert held.state == Assignment.State.EXPIRED
    assert Judgment.objects.filter(pk=judgment.pk).exists()
    withdrawn = r"This item was withdrawn by a manager; your answer was not needed\. Moving on\."
    with pytest.raises(Conflict, match=withdrawn):
        judgment_submit(
            assignment_id=held.pk, annotator=second_annotator, ranking=ranking_from_choice(assignment=held, choice="A")
        )
    assert assignment_next(project=project, annotator=second_annotator) is None
    item_restore(item=item)
    assert assignment_next(project=project, annotator=second_annotator) is None  # they had it already
    third = MembershipFactory(project=project).user
    assert assignment_next(project=project, annotator=third).item_id == item.pk


def test_a_withdrawn_gold_item_is_not_served(project, annotator):
    project_update(project=project, gold_rate=1.0)
    gold = ItemFactory(project=project, is_gold=True, gold_answer=[[0], [1]])
    item_withdraw(item=gold)
    assert assignment_next(project=project, annotator=annotator) is None


def test_gold_answers_are_rankings_of_every_position(project):
    item = ItemFactory(project=project)
    assert gold_answer_from_ranks(ranks={0: "2", 1: "1"}, count=2) == [[1], [0]]
    assert gold_answer_from_ranks(ranks={0: 1, 1: 1}, count=2) == [[0, 1]]
    with pytest.raises(InvalidInput, match="Give each of the 2 responses a rank"):
        gold_answer_from_ranks(ranks={0: "1"}, count=2)
    with pytest.raises(InvalidInput, match="ranks go from 1 to 2"):
        gold_answer_from_ranks(ranks={0: "1", 1: "3"}, count=2)
    gold = item_gold_set(item=item, answer=[[1], [0]])
    assert gold.is_gold and gold.gold_answer == [[1], [0]]
    with pytest.raises(InvalidInput, match=r"each response position 0\.\.1 exactly once"):
        item_gold_set(item=item, answer=[[0], [0]])
    assert not item_gold_set(item=item, answer=None).is_gold


def test_the_items_page_letters_are_positions(project):
    """A = position 0, B = position 1…: letters in, rankings of positions stored, letters out."""
    assert gold_answer_from_labels(count=2, choice="B") == [[1], [0]]
    assert gold_answer_from_labels(count=2, choice="tie") == [[0, 1]]
    assert gold_answer_from_labels(count=3, ranks={"A": "2", "B": "1", "C": "3"}) == [[1], [0], [2]]
    with pytest.raises(InvalidInput, match="Choose the gold answer: A, B or Tie"):
        gold_answer_from_labels(count=2)
    with pytest.raises(InvalidInput, match="Give each of the 3 responses a rank"):
        gold_answer_from_labels(count=3, ranks={"A": "1", "B": "2", "C": ""})
    assert ranking_label([[1], [0]], count=2) == "B over A"
    assert ranking_label([[0, 1]], count=2) == "Tie"
    assert ranking_label([[2], [0, 1], [3]], count=4) == "C > A = B > D"
    assert plain_excerpt("## Title\n\nSome **bold** `code`\n\n- one\n- two") == "Title Some bold code one two"
    assert plain_excerpt("word " * 100, limit=20) == "word word word word…"


def test_priority_orders_the_work(project, annotator):
    first, second = ItemFactory(project=project), ItemFactory(project=project)
    item_priority_set(item=second, priority="5")
    assert assignment_next(project=project, annotator=annotator).item_id == second.pk
    assert first.pk != second.pk
    with pytest.raises(InvalidInput, match="whole number"):
        item_priority_set(item=first, priority="high")
    with pytest.raises(InvalidInput, match="between"):
        item_priority_set(item=first, priority=10**9)


def test_items_are_found_by_external_id_and_prompt_text(project):
    ItemFactory(project=project, external_id="alpha-1", prompt=[{"role": "user", "content": "Explain photosynthesis"}])
    ItemFactory(project=project, external_id="beta-2", prompt=[{"role": "user", "content": "Write a haiku"}])
    assert [item.external_id for item in items_search(project=project, query="ALPHA")] == ["alpha-1"]
    assert [item.external_id for item in items_search(project=project, query="haiku")] == ["beta-2"]
    assert items_search(project=project, query="nothing like it").count() == 0
    with pytest.raises(InvalidInput, match="Status 'odd' is unknown"):
        items_search(project=project, status="odd")


def test_an_items_page_shows_who_judged_what(project, annotator):
    ItemFactory(project=project)
    judgment = _judge(project, annotator, choice="B")
    item = judgment.item
    page, rows = items_page(project=project, open_id=item.pk)
    (row,) = rows
    label = {response.pk: response.label for response in row.detail.responses}
    expected = " over ".join(label[group[0]] for group in judgment.ranking)  # "B over A": letters by position
    assert page.paginator.count == 1
    assert (row.detail.judgments[0].annotator, row.detail.judgments[0].ranking) == ("anna", expected)
    assert (row.majority, row.majority_votes, row.judged) == (expected, 1, 1)
