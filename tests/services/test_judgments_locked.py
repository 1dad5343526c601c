"""The API's submit: the access read locks the assignment, and the service trusts that lock."""

import pytest
from django.db import transaction
from django.http import Http404

from labeling.access import assignment_for_user
from labeling.models import Assignment, Item, Judgment
from labeling.services.assignment import assignment_next, assignment_skip
from labeling.services.errors import Conflict, NotFound
from labeling.services.judgments import judgment_submit, ranking_from_choice


@pytest.fixture
def assignment(project, annotator, items):
    return assignment_next(project=project, annotator=annotator)


def _submit_locked(user, assignment, annotator=None):
    with transaction.atomic():
        locked = assignment_for_user(user, str(assignment.pk), lock=True)
        ranking = ranking_from_choice(assignment=locked, choice="A")
        return judgment_submit(assignment=locked, annotator=annotator or user, ranking=ranking)


def test_a_locked_submit_stores_once_and_counts_the_vote(annotator, assignment):
    judgment, created = _submit_locked(annotator, assignment)
    again, created_again = _submit_locked(annotator, assignment)
    assert (created, created_again) == (True, False)
    assert again.pk == judgment.pk
    assert Judgment.objects.count() == 1
    assert Assignment.objects.get(pk=assignment.pk).state == Assignment.State.SUBMITTED
    item = Item.objects.get(pk=assignment.item_id)
    assert (item.votes, item.filled) == (1, 1)


def test_the_locked_read_loads_only_what_a_submit_needs(annotator, assignment):
    with transaction.atomic():
        locked = assignment_for_user(annotator, str(assignment.pk), lock=True)
    assert locked.project.slug == assignment.project.slug
    assert locked.item.withdrawn_at is None
    assert "prompt" in locked.item.get_deferred_fields()


def test_someone_elses_assignment_is_404_or_not_found(annotator, second_annotator, assignment):
    with pytest.raises(Http404):
        _submit_locked(second_annotator, assignment)
    with pytest.raises(NotFound):
        _submit_locked(annotator, assignment, annotator=second_annotator)
    assert not Judgment.objects.exists()


def test_a_skipped_assignment_cannot_be_judged_through_the_locked_path(annotator, assignment):
    assignment_skip(assignment=assignment, annotator=annotator)
    with pytest.raises(Conflict):
        _submit_locked(annotator, assignment)
    assert not Judgment.objects.exists()


def test_a_late_locked_submit_is_stored_and_takes_its_slot_again(annotator, assignment):
    Assignment.objects.filter(pk=assignment.pk).update(state=Assignment.State.EXPIRED)
    Item.objects.filter(pk=assignment.item_id).update(filled=0)
    judgment, created = _submit_locked(annotator, assignment)
    assert created and judgment.late
    item = Item.objects.get(pk=assignment.item_id)
    assert (item.votes, item.filled) == (1, 1)
