"""The lease statements (labeling/db/leases.py), on whichever database the run uses."""

import pytest
from django.db import transaction
from django.utils import timezone

from labeling.db import leases
from labeling.models import Assignment, Item
from labeling.services.assignment import assignment_next
from tests.factories import ItemFactory

BREADTH_FIRST = ("-priority", "filled", "id")


@pytest.fixture
def who(project, annotator):
    return {"project_id": project.pk, "annotator_id": annotator.pk}


def test_only_a_member_gets_a_turn(project, annotator, outsider):
    with transaction.atomic():
        assert leases.membership_lock(project_id=project.pk, user_id=annotator.pk, asynchronous=True)
        assert not leases.membership_lock(project_id=project.pk, user_id=outsider.pk, asynchronous=False)


def test_active_leases_come_with_their_items(project, annotator, items, who):
    lease = assignment_next(project=project, annotator=annotator)
    (read,) = leases.active_leases(project_id=project.pk, annotator_id=annotator.pk)
    assert (read.pk, read.item.pk, read.item.prompt) == (lease.pk, lease.item.pk, lease.item.prompt)


def test_the_window_claim_takes_the_first_open_item_in_order_with_its_responses(project, who):
    low = ItemFactory(project=project, priority=0)
    high = ItemFactory(project=project, priority=5)
    ItemFactory(project=project, priority=9, is_gold=True)
    ItemFactory(project=project, priority=9, is_complete=True)
    with transaction.atomic():
        item, responses = leases.claim_window(**who, order_by=BREADTH_FIRST, window=64)
    assert item.pk == high.pk and item.filled == 1
    assert [response.position for response in responses] == [0, 1]
    assert Item.objects.get(pk=high.pk).filled == 1 and Item.objects.get(pk=low.pk).filled == 0


def test_the_window_claim_passes_over_items_the_annotator_had(project, annotator, who):
    first, second = ItemFactory(project=project), ItemFactory(project=project)
    assignment_next(project=project, annotator=annotator)  # takes `first`
    with transaction.atomic():
        item, _ = leases.claim_window(**who, order_by=BREADTH_FIRST, window=64)
    assert (first.pk, item.pk) == (first.pk, second.pk)


def test_beyond_the_window_only_sqlite_finds_an_untouched_item_in_the_same_statement(project, who):
    ItemFactory.create_batch(3, project=project, target=2, filled=1)  # the window: all started
    beyond = ItemFactory(project=project)
    with transaction.atomic():
        claimed = leases.claim_window(**who, order_by=("-priority", "-filled", "id"), window=0)
    if leases.searches_untouched():
        assert claimed[0].pk == beyond.pk
    else:
        assert claimed is None


@pytest.mark.parametrize("untouched", [True, False])
def test_the_full_search_locks_the_first_open_item_without_taking_its_slot(project, who, untouched):
    started = ItemFactory(project=project, target=2, filled=1, priority=5)
    fresh = ItemFactory(project=project)
    with transaction.atomic():
        item = leases.claim_first(**who, order_by=("-priority", "-filled", "id"), untouched=untouched)
        waited = leases.claim_first(**who, order_by=leases.UNTOUCHED_ORDER, untouched=untouched, wait=True)
    assert item.pk == (fresh.pk if untouched else started.pk)
    assert waited.pk == item.pk
    assert Item.objects.get(pk=item.pk).filled == item.filled


def test_nothing_is_claimed_when_nothing_is_open(project, who):
    ItemFactory(project=project, withdrawn_at="2026-01-01T00:00:00Z")
    with transaction.atomic():
        assert leases.claim_window(**who, order_by=BREADTH_FIRST, window=64) is None
        assert leases.claim_first(**who, order_by=BREADTH_FIRST, wait=True) is None


def test_a_slot_taken_and_the_responses_read(project):
    item = ItemFactory(project=project, responses=["one", "two", "three"])
    leases.slot_take(item.pk)
    assert Item.objects.get(pk=item.pk).filled == 1
    assert [response.content for response in leases.responses_of(item.pk)] == ["one", "two", "three"]


def test_gold_items_unseen_by_the_annotator_are_offered_and_withdrawn_ones_never(project, annotator, who):
    seen = ItemFactory(project=project, is_gold=True)
    unseen = ItemFactory(project=project, is_gold=True)
    ItemFactory(project=project, is_gold=True, withdrawn_at="2026-01-01T00:00:00Z")
    ItemFactory(project=project)  # not gold
    Assignment.objects.create(
        project=project, item=seen, annotator=annotator, shown_order=[], expires_at=timezone.now()
    )
    assert leases.gold_unseen(**who, limit=10) == [unseen.pk]
    assert leases.gold_unseen(**who, limit=0) == []
