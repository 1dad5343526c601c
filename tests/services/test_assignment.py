from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Assignment, Item
from labeling.services import assignment as assignment_module
from labeling.services.assignment import assignment_next, assignment_skip, leases_expire
from labeling.services.errors import Conflict, NotFound
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory


def _judge(assignment, annotator, choice="A"):
    ranking = ranking_from_choice(assignment=assignment, choice=choice)
    return judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)


def test_next_leases_an_item_and_records_a_shuffled_order(project, annotator, items):
    assignment = assignment_next(project=project, annotator=annotator)
    assert assignment.state == Assignment.State.ACTIVE
    assert sorted(assignment.shown_order) == sorted(assignment.item.responses.values_list("id", flat=True))
    assert assignment.expires_at > timezone.now()
    assert Item.objects.get(pk=assignment.item_id).filled == 1


def test_asking_again_returns_the_same_assignment(project, annotator, items):
    first = assignment_next(project=project, annotator=annotator)
    assert assignment_next(project=project, annotator=annotator).pk == first.pk


def test_an_annotator_never_gets_an_item_twice(project, annotator, items):
    seen = []
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        seen.append(assignment.item_id)
        _judge(assignment, annotator)
    assert sorted(seen) == sorted(item.pk for item in items)


def test_overlap_is_honoured_across_annotators(project, items, user_factory):
    """Overlap 2: three annotators share five items, each item gets exactly two judgments."""
    annotators = [MembershipFactory(project=project).user for _ in range(3)]
    for _ in range(10):
        for annotator in annotators:
            assignment = assignment_next(project=project, annotator=annotator)
            if assignment:
                _judge(assignment, annotator)
    for item in Item.objects.filter(project=project):
        assert item.judgments.count() == 2
        assert item.votes == 2 and item.is_complete


def test_depth_first_finishes_items_before_opening_new_ones(project, items, annotator, second_annotator):
    first = assignment_next(project=project, annotator=annotator)
    _judge(first, annotator)
    assert assignment_next(project=project, annotator=second_annotator).item_id == first.item_id


def test_breadth_first_spreads_votes(items, annotator, second_annotator, project):
    project.order = "breadth-first"
    project.save()
    first = assignment_next(project=project, annotator=annotator)
    _judge(first, annotator)
    assert assignment_next(project=project, annotator=second_annotator).item_id != first.item_id


def test_higher_priority_items_come_first(project, annotator, items):
    Item.objects.filter(pk=items[3].pk).update(priority=5)
    assert assignment_next(project=project, annotator=annotator).item_id == items[3].pk


def test_nothing_left_returns_none(project, annotator):
    assert assignment_next(project=project, annotator=annotator) is None


def test_outsider_cannot_claim(project, items, outsider):
    with pytest.raises(NotFound):
        assignment_next(project=project, annotator=outsider)


def test_expired_lease_frees_the_slot_on_the_next_claim(annotator, second_annotator, user_factory):
    project = ProjectFactory(slug="single", overlap=1)
    for user in (annotator, second_annotator):
        MembershipFactory(project=project, user=user)
    ItemFactory(project=project)
    first = assignment_next(project=project, annotator=annotator)
    assert assignment_next(project=project, annotator=second_annotator) is None
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = assignment_next(project=project, annotator=second_annotator)
    assert second is not None and second.item_id == first.item_id
    first.refresh_from_db()
    assert first.state == Assignment.State.EXPIRED


def test_late_submit_is_stored_not_lost(annotator, second_annotator):
    project = ProjectFactory(slug="late", overlap=1)
    for user in (annotator, second_annotator):
        MembershipFactory(project=project, user=user)
    ItemFactory(project=project)
    first = assignment_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = assignment_next(project=project, annotator=second_annotator)
    _judge(second, second_annotator)
    first.refresh_from_db()
    judgment, created = _judge(first, annotator, "B")
    assert created and judgment.late
    item = Item.objects.get(pk=first.item_id)
    assert item.votes == 2 and item.judgments.count() == 2


def test_expired_own_lease_gives_a_fresh_claim(project, annotator, items):
    first = assignment_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = assignment_next(project=project, annotator=annotator)
    assert second.pk != first.pk and second.item_id != first.item_id


def test_leases_expire_releases_counts(project, annotator, items):
    first = assignment_next(project=project, annotator=annotator)
    Assignment.objects.filter(pk=first.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_expire() == 1
    assert Item.objects.get(pk=first.item_id).filled == 0


def test_skip_frees_the_slot_and_is_not_offered_again(project, annotator, items):
    first = assignment_next(project=project, annotator=annotator)
    skipped = assignment_skip(assignment=first, annotator=annotator, reason="not my language")
    assert skipped.state == Assignment.State.SKIPPED and skipped.skip_reason == "not my language"
    assert Item.objects.get(pk=first.item_id).filled == 0
    assert assignment_next(project=project, annotator=annotator).item_id != first.item_id
    assert assignment_skip(assignment=first, annotator=annotator).state == Assignment.State.SKIPPED


def test_skip_after_submit_is_refused(project, annotator, items):
    assignment = assignment_next(project=project, annotator=annotator)
    _judge(assignment, annotator)
    with pytest.raises(Conflict):
        assignment_skip(assignment=assignment, annotator=annotator)


def test_a_queued_lease_expired_by_another_process_meanwhile_gives_a_fresh_claim(
    project, annotator, items, monkeypatch
):
    current = assignment_next(project=project, annotator=annotator)
    queued = assignment_module.assignment_prefetch(project=project, annotator=annotator)
    _judge(current, annotator)
    read_leases = assignment_module._leases

    def leases_then_expired_elsewhere(project, annotator, **kwargs):
        leases = read_leases(project, annotator, **kwargs)
        # Another process releases the queued lease after this one has read it.
        assignment_module.leases_release(Assignment.objects.filter(pk=queued.pk), now=timezone.now())
        return leases

    monkeypatch.setattr(assignment_module, "_leases", leases_then_expired_elsewhere)
    fresh = assignment_next(project=project, annotator=annotator)
    assert fresh is not None and fresh.pk != queued.pk and fresh.item_id != queued.item_id
    queued.refresh_from_db()
    assert queued.state == Assignment.State.EXPIRED
    assert Item.objects.get(pk=queued.item_id).filled == 0  # released once, not twice


def test_an_annotator_who_had_every_item_of_the_window_gets_one_past_it(monkeypatch, db):
    """Depth-first keeps half-done items first; an annotator who judged all of them is
    served past the window (the untouched items), on both databases."""
    monkeypatch.setattr(assignment_module, "CLAIM_WINDOW", 3)
    project = ProjectFactory(slug="window", overlap=2)
    ItemFactory.create_batch(6, project=project)
    first, second = (MembershipFactory(project=project).user for _ in range(2))
    for _ in range(4):  # four half-done items lead the order of work
        _judge(assignment_next(project=project, annotator=first), first)

    lease = assignment_next(project=project, annotator=first)

    assert lease is not None
    assert lease.item.votes == 0 and lease.item.pk not in set(
        Assignment.objects.filter(annotator=first, state=Assignment.State.SUBMITTED).values_list("item_id", flat=True)
    )
    assert assignment_next(project=project, annotator=second).item.votes == 1  # the others still finish items first


def test_past_the_window_the_untouched_item_of_highest_priority_comes_first(monkeypatch, db):
    monkeypatch.setattr(assignment_module, "CLAIM_WINDOW", 2)
    project = ProjectFactory(slug="untouched", overlap=2)
    judged = ItemFactory.create_batch(2, project=project, priority=9)
    low, high, higher_id = (ItemFactory(project=project, priority=priority) for priority in (0, 2, 2))
    annotator = MembershipFactory(project=project).user
    for _ in judged:
        _judge(assignment_next(project=project, annotator=annotator), annotator)

    leases = []
    for _ in range(3):
        leases.append(assignment_next(project=project, annotator=annotator).item)
        _judge(Assignment.objects.get(annotator=annotator, state=Assignment.State.ACTIVE), annotator)

    assert [item.pk for item in leases] == [high.pk, higher_id.pk, low.pk]
