"""The submit's statements (labeling/db/votes.py), on whichever database the run uses."""

import uuid

import pytest
from django.db import transaction

from labeling.db import votes
from labeling.models import Assignment, Item, Judgment, Membership
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.errors import Conflict, NotFound
from labeling.services.judgments import judgment_submit
from tests.factories import ItemFactory, ProjectFactory


@pytest.fixture
def lease(project, annotator, items):
    return assignment_next(project=project, annotator=annotator)


def _first(lease):
    return [[lease.shown_order[0]], [lease.shown_order[1]]]


def test_the_lease_is_read_locked_with_its_project_and_only_what_a_submit_needs(annotator, lease):
    with transaction.atomic():
        locked = votes.lease_locked(annotator_id=annotator.pk, assignment_id=lease.pk)
    assert locked.pk == lease.pk and locked.project.slug == lease.project.slug
    assert locked.item.withdrawn_at is None
    assert "prompt" in locked.item.get_deferred_fields()


def test_no_lease_is_read_for_another_annotator_another_project_or_a_removed_member(
    project, annotator, second_annotator, lease
):
    other = ProjectFactory(slug="gamma")
    with transaction.atomic():
        assert votes.lease_locked(annotator_id=second_annotator.pk, assignment_id=lease.pk) is None
        assert votes.lease_locked(annotator_id=annotator.pk, assignment_id=lease.pk, project_id=other.pk) is None
        assert votes.lease_locked(annotator_id=annotator.pk, assignment_id=uuid.uuid4()) is None
    Membership.objects.filter(project=project, user=annotator).delete()
    with transaction.atomic():
        assert votes.lease_locked(annotator_id=annotator.pk, assignment_id=lease.pk) is None


@pytest.mark.parametrize("settle", [True, False])
def test_a_vote_completes_the_item_at_its_target_only_when_told_to_settle(project, settle):
    item = ItemFactory(project=project, target=2, filled=2)
    with transaction.atomic():
        first = votes.vote_count(item_id=item.pk, released=False, settle=settle)
        after = votes.vote_count(item_id=item.pk, released=True, settle=settle)
    assert (first[0], first[1], first[2], bool(first[3])) == (1, 2, 2, False)
    assert (after[0], after[1], after[2], bool(after[3])) == (2, 3, 2, settle)
    item.refresh_from_db()
    assert (item.votes, item.filled, item.is_complete) == (2, 3, settle)


def test_a_complete_item_stays_complete_whatever_a_late_vote_says(project):
    item = ItemFactory(project=project, target=1, votes=1, filled=1, is_complete=True)
    with transaction.atomic():
        votes.vote_count(item_id=item.pk, released=True, settle=False)
    item.refresh_from_db()
    assert (item.votes, item.is_complete) == (2, True)


def test_the_one_statement_submit_counts_closes_and_stores(annotator, lease):
    if not votes.supports_one_statement():
        pytest.skip("PostgreSQL's data-modifying WITH")
    with transaction.atomic():
        locked = votes.lease_locked(annotator_id=annotator.pk, assignment_id=lease.pk)
        judgment = Judgment(
            assignment=locked, project_id=locked.project_id, item_id=locked.item_id, annotator=annotator,
            ranking=_first(lease), seconds=1.0,
        )  # fmt: skip
        votes.judgment_store_counted(judgment=judgment, lease=locked, released=False, finished_at=lease.expires_at)
    assert Assignment.objects.get(pk=lease.pk).state == Assignment.State.SUBMITTED
    item = Item.objects.get(pk=lease.item_id)
    assert (item.votes, item.filled) == (1, 1)
    assert Judgment.objects.get().pk == judgment.pk


def test_a_submit_stores_once_and_counts_the_vote(annotator, lease):
    judgment, created = judgment_submit(assignment_id=lease.pk, annotator=annotator, ranking=_first(lease))
    again, created_again = judgment_submit(assignment_id=str(lease.pk), annotator=annotator, ranking=_first(lease))
    assert (created, created_again, again.pk) == (True, False, judgment.pk)
    assert Assignment.objects.get(pk=lease.pk).state == Assignment.State.SUBMITTED
    item = Item.objects.get(pk=lease.item_id)
    assert (item.votes, item.filled) == (1, 1)


def test_someone_elses_or_a_malformed_assignment_is_not_found(annotator, second_annotator, lease):
    for who, which in ((second_annotator, lease.pk), (annotator, "not-a-uuid"), (annotator, uuid.uuid4())):
        with pytest.raises(NotFound, match="No such assignment"):
            judgment_submit(assignment_id=which, annotator=who, ranking=_first(lease))
    assert not Judgment.objects.exists()


def test_a_skipped_assignment_cannot_be_judged(annotator, lease):
    assignment_skip(assignment=lease, annotator=annotator)
    with pytest.raises(Conflict):
        judgment_submit(assignment_id=lease.pk, annotator=annotator, ranking=_first(lease))
    assert not Judgment.objects.exists()


def test_a_late_submit_is_stored_and_takes_its_slot_again(annotator, lease):
    Assignment.objects.filter(pk=lease.pk).update(state=Assignment.State.EXPIRED)
    Item.objects.filter(pk=lease.item_id).update(filled=0)
    judgment, created = judgment_submit(assignment_id=lease.pk, annotator=annotator, ranking=_first(lease))
    assert created and judgment.late
    item = Item.objects.get(pk=lease.item_id)
    assert (item.votes, item.filled) == (1, 1)
