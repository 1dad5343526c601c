"""Who judges what next: leases on items, kept correct under concurrency.

Invariants protected here (and backed by constraints in models.py):
- an item's `filled` (votes plus live leases) never exceeds its `target`, except by
  a late submit, which is stored rather than lost;
- no annotator is given the same item twice (unique item + annotator);
- one live lease per annotator and project, so two tabs share it.
Finding work reads counters kept on the item through an index, never counts rows.
"""

import random
import time
from collections import Counter
from datetime import timedelta
from typing import TypedDict

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from labeling.db import leases, sql
from labeling.models import Assignment, Item, Project, Response
from labeling.services.errors import Conflict, InvalidInput, NotFound
from labeling.services.text import text_checked

EXPIRE_BATCH = 100
# Open items read per claim before the whole project is searched (see _claim).
CLAIM_WINDOW = 64
# Gold items considered per gold claim (one is picked at random).
GOLD_SAMPLE = 500
_shuffle = random.SystemRandom()
_expiry_checked: dict[int, float] = {}  # project id -> monotonic time of this process's last expiry pass


def assignment_next(*, project: Project, annotator: User) -> Assignment | None:
    """The annotator's current lease in `project`, or the next one; None when nothing is left.

    The next one is the item leased ahead by `assignment_prefetch` when there is
    one (its lease starts afresh), else a new claim.
    """
    if project.archived_at is not None:
        return None  # an archived project hands out no more work
    now = timezone.now()
    # Release leases past their time first, in a transaction of its own, so the
    # claim below holds no item locks while it may wait for one. Each process does
    # this at most every LABELING_EXPIRY_CHECK_SECONDS per project: a lease is freed
    # that much late at worst, and most claims skip the round trips.
    checked = _expiry_checked.get(project.pk, 0.0)
    if time.monotonic() - checked >= settings.LABELING_EXPIRY_CHECK_SECONDS:
        _expiry_checked[project.pk] = time.monotonic()
        leases_expire(project=project, now=now)
    outermost = not connection.in_atomic_block
    with sql.commits_unsynced(outermost), sql.writers_in_turn(), transaction.atomic():
        current, queued = _leases(project, annotator, asynchronous=outermost)
        if current is not None:
            if current.expires_at > now:
                return current
            _release(current, now)
        if queued is not None:
            if queued.expires_at > now:
                fresh = {
                    "queued": False,
                    "created_at": now,
                    "expires_at": now + timedelta(seconds=project.lease_seconds),
                }
                # Compare-and-set: another process may have expired it since we read it.
                if Assignment.objects.filter(pk=queued.pk, state=Assignment.State.ACTIVE).update(**fresh):
                    for field, value in fresh.items():
                        setattr(queued, field, value)
                    return queued
            else:
                _release(queued, now)
        return _lease_new(project, annotator, now, queued=False)


def assignment_prefetch(*, project: Project, annotator: User) -> Assignment | None:
    """Lease the item after the current one, so the page can show it the moment the current one is judged."""
    if project.archived_at is not None:
        return None
    now = timezone.now()
    outermost = not connection.in_atomic_block
    with sql.commits_unsynced(outermost), sql.writers_in_turn(), transaction.atomic():
        current, queued = _leases(project, annotator, asynchronous=outermost)
        if current is None or current.expires_at <= now:
            return None
        if queued is not None:
            if queued.expires_at > now:
                return queued
            _release(queued, now)
        return _lease_new(project, annotator, now, queued=True)


def _leases(project: Project, annotator: User, *, asynchronous: bool) -> tuple[Assignment | None, Assignment | None]:
    """Lock the annotator's membership, then read their current and queued leases.

    Two tabs or a double click of one annotator race here; the membership row
    lock serializes them, so both get the same leases.

    `asynchronous` (a transaction of the lease's own): it commits without waiting for
    its WAL to reach the disk, a millisecond or more of each claim (PostgreSQL sets it
    with the lock; SQLite, which refuses it inside a transaction, in `sql.commits_unsynced`).
    A crash can lose the last fraction of a second of leases, which is harmless: the items
    are back in the queue and a submit on a lost lease answers 404. A judgment still
    waits for the disk, and that flush carries every lease committed before it, so no
    stored judgment points at a lost lease. Inside a caller's transaction it stays off:
    the setting would last until that transaction commits, whatever else it writes.
    """
    if not leases.membership_lock(project_id=project.pk, user_id=annotator.pk, asynchronous=asynchronous):
        raise NotFound("You are not a member of this project.")
    # A fresh statement after the lock, so it sees a lease the other tab just committed.
    # With their items, which the page and the API show next.
    by_queue = {lease.queued: lease for lease in leases.active_leases(project_id=project.pk, annotator_id=annotator.pk)}
    return by_queue.get(False), by_queue.get(True)


def _lease_new(project: Project, annotator: User, now, *, queued: bool) -> Assignment | None:
    responses = None
    item = None
    if project.gold_rate and _shuffle.random() < project.gold_rate:
        item = _claim_gold(project, annotator)
        if item is not None:
            _take_slot(item)
    if item is None:
        claimed = _claim(project, annotator)
        if claimed is None:
            return None
        item, responses = claimed
    if responses is None:
        responses = leases.responses_of(item.pk)
    response_ids = [response.pk for response in responses]
    lease = sql.insert(
        Assignment(
            project=project,
            item=item,
            annotator=annotator,
            queued=queued,
            shown_order=_shuffle.sample(response_ids, len(response_ids)),
            expires_at=now + timedelta(seconds=project.lease_seconds),
        )
    )
    lease.claimed_responses = responses  # the page and the API show them next
    return lease


def _work_order(project: Project) -> tuple[str, ...]:
    """The project's order of work, as `order_by` fields: priority first, then depth- or breadth-first."""
    return (
        ("-priority", "filled", "id")
        if project.order == Project.Order.BREADTH_FIRST
        else ("-priority", "-filled", "id")
    )


class _Who(TypedDict):
    """Whose claim: the keyword arguments every claim statement takes."""

    project_id: int
    annotator_id: int


def _claim(project: Project, annotator: User) -> tuple[Item, list[Response] | None] | None:
    """Claim the first item, in the project's order of work, with a free slot this annotator never
    had, and take the slot: the item, and its responses when the claim read them.

    First one statement over a bounded window of the open-items index (`CLAIM_WINDOW` items),
    so the common claim's cost does not grow with the project nor with the annotator's
    history; then the untouched items, then the whole project. skip_locked: an item another
    annotator is claiming right now is passed over instead of waited for; the lock, held
    until commit, keeps its `filled` honest. Last, wait for rows others hold rather than
    skip them: an item being claimed by someone else may still have a slot, and "nothing
    left" must be true.
    """
    order = _work_order(project)
    who: _Who = {"project_id": project.pk, "annotator_id": annotator.pk}
    claimed = leases.claim_window(**who, order_by=order, window=CLAIM_WINDOW)
    if claimed is not None:
        return claimed
    item = None
    if not leases.searches_untouched():  # SQLite's window statement searched them already
        item = leases.claim_first(**who, order_by=leases.UNTOUCHED_ORDER, untouched=True)
    item = item or leases.claim_first(**who, order_by=order) or leases.claim_first(**who, order_by=order, wait=True)
    if item is None:
        return None
    _take_slot(item)
    return item, None


def _take_slot(item: Item) -> None:
    leases.slot_take(item.pk)
    item.filled += 1


def _release(assignment: Assignment, now) -> None:
    """Expire one lease, freeing its slot once."""
    leases_release(Assignment.objects.filter(pk=assignment.pk), now=now)


def _claim_gold(project: Project, annotator: User) -> Item | None:
    """A gold item this annotator has not seen, at random. Gold items have no overlap:
    every annotator may answer each one once. They look like any other item."""
    candidates = leases.gold_unseen(project_id=project.pk, annotator_id=annotator.pk, limit=GOLD_SAMPLE)
    if not candidates:
        return None
    return Item.objects.filter(pk=_shuffle.choice(candidates)).first()


def leases_expire(*, project: Project | None = None, now=None, limit: int = EXPIRE_BATCH) -> int:
    """Release leases past their expiry so their slots go to others; returns how many.

    Called on every claim (so no background process is needed) and by the
    `expire_leases` command. skip_locked: a lease being submitted right now is left
    to its submit.
    """
    now = now or timezone.now()
    expired = Assignment.objects.filter(expires_at__lte=now)
    if project is not None:
        expired = expired.filter(project=project)
    return leases_release(expired, now=now, skip_locked=True, limit=limit)


def leases_release(leases, *, now, skip_locked: bool = False, limit: int | None = None) -> int:
    """End the live leases among `leases` and free their items' slots, once each; returns how many.

    The leases are locked first, so a lease being submitted is either waited for (and
    then no longer live) or, with `skip_locked`, left to its submit. Every caller that
    ends leases (expiry, a member's removal, an item's withdrawal) goes through here.
    """
    with transaction.atomic():
        live = leases.filter(state=Assignment.State.ACTIVE).select_for_update(skip_locked=skip_locked)
        live = live.only("id", "item_id")
        rows = list(live[:limit] if limit else live)
        if not rows:
            return 0
        Assignment.objects.filter(pk__in=[row.pk for row in rows]).update(
            state=Assignment.State.EXPIRED, finished_at=now
        )
        by_count: dict[int, list[int]] = {}
        for item_id, count in Counter(row.item_id for row in rows).items():
            by_count.setdefault(count, []).append(item_id)
        for count, item_ids in by_count.items():
            Item.objects.filter(pk__in=item_ids).update(filled=F("filled") - count)
        return len(rows)


def assignment_skip(*, assignment: Assignment, annotator: User, reason: str = "") -> Assignment:
    """Give an item back without judging it; the annotator will not be given it again.

    Idempotent: skipping a skipped assignment returns it unchanged.
    """
    reason = text_checked((reason or "").strip()[:500], "The skip reason")
    reasons = assignment.project.skip_reasons or []
    if reasons and reason not in reasons:
        raise InvalidInput(f"Choose a reason for skipping: {', '.join(reasons)}.")
    with transaction.atomic():
        # Lock the lease so a skip and a submit of the same assignment cannot both win.
        locked = Assignment.objects.select_for_update().filter(pk=assignment.pk, annotator=annotator).first()
        if locked is None:
            raise NotFound("No such assignment.")
        if locked.state == Assignment.State.SKIPPED:
            return locked
        if locked.state == Assignment.State.SUBMITTED:
            raise Conflict("This item is already judged; it cannot be skipped.")
        if locked.state == Assignment.State.ACTIVE:
            Item.objects.filter(pk=locked.item_id).update(filled=F("filled") - 1)
        locked.state = Assignment.State.SKIPPED
        locked.skip_reason = reason
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "skip_reason", "finished_at"])
        return locked
