"""`manage.py expire_leases`: the periodic clean-up of leases nobody finished."""

from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from labeling.models import Assignment, Item
from labeling.services.assignment import assignment_next


def expire(*assignments: Assignment) -> None:
    Assignment.objects.filter(pk__in=[a.pk for a in assignments]).update(expires_at=timezone.now() - timedelta(1))


def run() -> str:
    out = StringIO()
    call_command("expire_leases", stdout=out)
    return out.getvalue()


def test_expired_leases_are_released_and_free_their_slots(project, annotator, second_annotator, items):
    mine = assignment_next(project=project, annotator=annotator)
    theirs = assignment_next(project=project, annotator=second_annotator)
    expire(mine)
    assert run() == "Released 1 expired leases.\n"
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.state == Assignment.State.EXPIRED
    assert theirs.state == Assignment.State.ACTIVE  # a lease still running is left alone
    assert Item.objects.get(pk=mine.item_id).filled == (1 if theirs.item_id == mine.item_id else 0)


def test_nothing_to_release_says_so_and_changes_nothing(project, annotator, items):
    lease = assignment_next(project=project, annotator=annotator)
    assert run() == "Released 0 expired leases.\n"
    lease.refresh_from_db()
    assert lease.state == Assignment.State.ACTIVE
