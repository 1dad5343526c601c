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
from functools import cache

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, prefetch_related_objects
from django.utils import timezone

from labeling.db import sql
from labeling.models import Assignment, Item, Project, Response
from labeling.services.errors import Conflict, InvalidInput, NotFound
from labeling.services.text import text_checked

EXPIRE_BATCH = 100
# Open items read per claim before falling back to untouched ones (see _claim_item).
CLAIM_WINDOW = 64
# Gold items considered per gold claim (one is picked at random).
GOLD_SAMPLE = 500
_shuffle = random.SystemRandom()
_expiry_checked: dict[int, float] = {}  # project id -> monotonic time of this process's last expiry pass


def assignment_next(*, project: Project, annotator: AbstractBaseUser) -> Assignment | None:
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


def assignment_prefetch(*, project: Project, annotator: AbstractBaseUser) -> Assignment | None:
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


def _leases(
    project: Project, annotator: AbstractBaseUser, *, asynchronous: bool
) -> tuple[Assignment | None, Assignment | None]:
    """Lock the annotator's membership, then read their current and queued leases.

    Two tabs or a double click of one annotator race here; the membership row
    lock serializes them, so both get the same leases.

    `asynchronous` (a transaction of the lease's own): it commits without waiting for
    its WAL to reach the disk, a millisecond or more of each claim (PostgreSQL sets it
    here; SQLite, which refuses it inside a transaction, in `sql.commits_unsynced`). A crash
    can lose the last fraction of a second of leases, which is harmless: the items are
    back in the queue and a submit on a lost lease answers 404. A judgment still
    waits for the disk, and that flush carries every lease committed before it, so no
    stored judgment points at a lost lease. Inside a caller's transaction it stays off:
    the setting would last until that transaction commits, whatever else it writes.
    """
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    fast = asynchronous and connection.vendor == "postgresql"
    set_async = ", set_config('synchronous_commit', 'off', true)" if fast else ""
    membership = sql.one(
        f"SELECT id{set_async} FROM labeling_membership WHERE project_id = %s AND user_id = %s{lock}",  # noqa: S608
        [project.pk, annotator.pk],
    )
    if membership is None:
        raise NotFound("You are not a member of this project.")
    # A fresh statement after the lock, so it sees a lease the other tab just committed.
    # With their items, which the page and the API show next.
    rows = sql.rows(
        f"SELECT {sql.columns(Assignment, 'a')}, {sql.columns(Item, 'i')} FROM labeling_assignment a"  # noqa: S608
        " INNER JOIN labeling_item i ON i.id = a.item_id"
        " WHERE a.annotator_id = %s AND a.project_id = %s AND a.state = %s",
        [annotator.pk, project.pk, Assignment.State.ACTIVE],
    )
    by_queue = {}
    for row in rows:
        lease, lease.item = sql.load_joined(row, Assignment, Item)
        by_queue[lease.queued] = lease
    return by_queue.get(False), by_queue.get(True)


def _lease_new(project: Project, annotator: AbstractBaseUser, now, *, queued: bool) -> Assignment | None:
    item = None
    if project.gold_rate and _shuffle.random() < project.gold_rate:
        item = _claim_gold(project, annotator)
        if item is not None:
            _take_slot(item)
    if item is None:
        # One statement claims, takes the slot and reads the responses; the full search only if it found nothing.
        item, untouched_tried = _claim_window(project, annotator)
        if item is None:
            item = _claim_item(project, annotator, untouched_tried=untouched_tried)
            if item is None:
                return None
            _take_slot(item)
    if not hasattr(item, "_prefetched_objects_cache"):
        prefetch_related_objects([item], "responses")  # the page and the API show them next
    response_ids = [response.pk for response in item.responses.all()]
    return sql.insert(
        Assignment(
            project=project,
            item=item,
            annotator=annotator,
            queued=queued,
            shown_order=_shuffle.sample(response_ids, len(response_ids)),
            expires_at=now + timedelta(seconds=project.lease_seconds),
        )
    )


def _take_slot(item: Item) -> None:
    sql.execute("UPDATE labeling_item SET filled = filled + 1 WHERE id = %s", [item.pk])
    item.filled += 1


_RESPONSE_FIELDS = ("id", "item_id", "position", "model", "content", "metadata")
# The claim of `_claim_item`'s first steps in one hand-written statement per database.
# {order} is the project's order of work; the window limit is written in (a prepared
# statement's generic plan then knows it).
#
# PostgreSQL: lock the first open item of the window this annotator never had
# (skip_locked), take its slot, and return it with its responses.
_CLAIM_WINDOW_SQL = """
WITH claimed AS (
    UPDATE labeling_item SET filled = filled + 1
    WHERE id = (
        SELECT i.id FROM labeling_item i
        WHERE i.id IN (
            SELECT u.id FROM labeling_item u
            WHERE u.project_id = %(project)s AND NOT u.is_complete AND NOT u.is_gold
                AND u.withdrawn_at IS NULL AND u.filled < u.target
            ORDER BY {u_order} LIMIT {window}
        )
        AND NOT i.is_complete AND NOT i.is_gold AND i.withdrawn_at IS NULL AND i.filled < i.target
        AND NOT EXISTS (SELECT 1 FROM labeling_assignment a WHERE a.item_id = i.id AND a.annotator_id = %(annotator)s)
        ORDER BY {i_order} LIMIT 1
        FOR UPDATE OF i SKIP LOCKED
    )
    RETURNING *
)
SELECT {columns}, (
    SELECT json_agg(json_build_array(r.id, r.item_id, r.position, r.model, r.content, r.metadata) ORDER BY r.position)
    FROM labeling_response r WHERE r.item_id = c.id
) FROM claimed c
"""
# SQLite (3.35+, RETURNING): the window, else the first untouched item, and its slot, in one
# statement under the database's write lock (IMMEDIATE transactions: no row locks to skip).
# The window is a derived table: written as `id IN (...)`, SQLite walked the whole open-items
# index testing membership, 1.4-2.7 ms at 20,000 items. Untouched is `filled < 1` ordered by
# (priority, filled, id): the breadth-first index's own order, read without a sort; written
# `filled = 0` ordered by (priority, id), SQLite sorted every open item to keep one (10-18 ms).
_CLAIM_SQLITE_SQL = """
UPDATE labeling_item SET filled = filled + 1
WHERE id = coalesce(
    (SELECT w.id FROM (
        SELECT u.id, u.priority, u.filled FROM labeling_item u
        WHERE u.project_id = %(project)s AND NOT u.is_complete AND NOT u.is_gold
            AND u.withdrawn_at IS NULL AND u.filled < u.target
        ORDER BY {u_order} LIMIT {window}
    ) w
    WHERE NOT EXISTS (SELECT 1 FROM labeling_assignment a WHERE a.item_id = w.id AND a.annotator_id = %(annotator)s)
    ORDER BY {w_order} LIMIT 1),
    (SELECT u.id FROM labeling_item u
    WHERE u.project_id = %(project)s AND NOT u.is_complete AND u.filled < 1 AND NOT u.is_gold
        AND u.withdrawn_at IS NULL AND u.filled < u.target
        AND NOT EXISTS (SELECT 1 FROM labeling_assignment a WHERE a.item_id = u.id AND a.annotator_id = %(annotator)s)
    ORDER BY u.priority DESC, u.filled ASC, u.id ASC LIMIT 1)
)
RETURNING {columns}
"""
_RESPONSES_SQL = f"SELECT {', '.join(_RESPONSE_FIELDS)} FROM labeling_response WHERE item_id = %s ORDER BY position"  # noqa: S608


def _work_order(project: Project) -> tuple[str, ...]:
    """The project's order of work, as `order_by` fields: priority first, then depth- or breadth-first."""
    return (
        ("-priority", "filled", "id")
        if project.order == Project.Order.BREADTH_FIRST
        else ("-priority", "-filled", "id")
    )


# The untouched items (no slot taken) in priority order. `filled__lt=1` and `filled` in the
# order, though every such item has filled 0: so the breadth-first index serves it in order
# on SQLite too (see _CLAIM_SQLITE_SQL).
_UNTOUCHED_ORDER = ("-priority", "filled", "id")


@cache
def _claim_window_sql(vendor: str, order_by: tuple[str, ...]) -> str:
    order = tuple(f"{name[1:]} DESC" if name.startswith("-") else f"{name} ASC" for name in order_by)
    return (_CLAIM_WINDOW_SQL if vendor == "postgresql" else _CLAIM_SQLITE_SQL).format(
        u_order=", ".join(f"u.{part}" for part in order),
        i_order=", ".join(f"i.{part}" for part in order),
        w_order=", ".join(f"w.{part}" for part in order),
        columns=sql.columns(Item, "c") if vendor == "postgresql" else sql.columns(Item, "labeling_item"),
        window=CLAIM_WINDOW,
    )


def _claim_window(project: Project, annotator: AbstractBaseUser) -> tuple[Item | None, bool]:
    """`_claim_item`'s first steps in one statement, with the item's slot taken and its responses read.

    Returns the item (or None) and whether the untouched items were searched too (SQLite).
    """
    vendor = connection.vendor
    query = _claim_window_sql(vendor, _work_order(project))
    row = sql.one(query, {"project": project.pk, "annotator": annotator.pk})
    if row is None:
        return None, vendor == "sqlite"
    (item,) = sql.load_joined(row, Item)
    if vendor == "postgresql":  # the responses' JSON follows the item's columns
        responses = [Response.from_db(connection.alias, _RESPONSE_FIELDS, values) for values in row[-1] or []]
    else:
        responses = [sql.load(Response, _RESPONSE_FIELDS, values) for values in sql.rows(_RESPONSES_SQL, [item.pk])]
    queryset = item.responses.all()
    queryset._result_cache, queryset._prefetch_done = responses, True
    item._prefetched_objects_cache = {"responses": queryset}
    return item, vendor == "sqlite"


def _release(assignment: Assignment, now) -> None:
    """Expire one lease, freeing its slot once."""
    leases_release(Assignment.objects.filter(pk=assignment.pk), now=now)


def _claim_item(project: Project, annotator: AbstractBaseUser, *, untouched_tried: bool) -> Item | None:
    """Lock the first item, in the project's order of work, with a free slot this annotator never had.

    skip_locked: an item another annotator is claiming right now is passed over
    instead of waited for; the lock, held until commit, keeps its `filled` honest.
    `_claim_window` has read a bounded window of the open-items index first, so the
    common claim's cost does not grow with the project nor with the annotator's
    history; this full search runs only when the window and the untouched items have
    nothing for them (`untouched_tried`: the window's statement searched those too).
    """
    order = _work_order(project)
    open_items = Item.objects.filter(
        project=project, is_complete=False, is_gold=False, withdrawn_at=None, filled__lt=F("target")
    )
    had_it = Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator))
    untouched = open_items.filter(filled__lt=1).filter(~had_it)
    anything = open_items.filter(~had_it)
    # Last, wait for rows others hold rather than skip them: an item being claimed
    # by someone else may still have a slot, and "nothing left" must be true.
    return (
        (None if untouched_tried else _lock_first(untouched, _UNTOUCHED_ORDER))
        or _lock_first(anything, order)
        or _lock_first(anything, order, wait=True)
    )


def _claim_gold(project: Project, annotator: AbstractBaseUser) -> Item | None:
    """A gold item this annotator has not seen, at random. Gold items have no overlap:
    every annotator may answer each one once. They look like any other item."""
    had_it = Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator))
    candidates = list(
        Item.objects.filter(project=project, is_gold=True, withdrawn_at=None)
        .filter(~had_it)
        .values_list("id", flat=True)[:GOLD_SAMPLE]
    )
    if not candidates:
        return None
    return Item.objects.filter(pk=_shuffle.choice(candidates)).first()


def _lock_first(queryset, order, *, wait: bool = False) -> Item | None:
    return queryset.order_by(*order).select_for_update(skip_locked=not wait, of=("self",)).first()


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


def assignment_skip(*, assignment: Assignment, annotator: AbstractBaseUser, reason: str = "") -> Assignment:
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
