"""The submit's statements: lock the lease, count the vote, close the lease, store the judgment.

An item is complete when its votes reach its target: that rule is `_VOTE_SQL`'s, and only
its (adaptive overlap may then ask for more, in the service, from what the vote returns).
"""

import uuid

from django.db import connection

from labeling.db import sql
from labeling.models import Assignment, Item, Judgment, Project

# A released (expired) lease takes its slot again: a late vote is stored, never lost, even
# if that overshoots the target. `settle`: whether reaching the target completes the
# item here (fixed overlap); under adaptive overlap the service settles it.
_VOTE_SQL = (
    "UPDATE labeling_item SET votes = votes + 1, filled = filled + %s,"
    " is_complete = is_complete OR (%s AND votes + 1 >= target) WHERE id = %s"
)
_FINISH_SQL = "UPDATE labeling_assignment SET state = %s, finished_at = %s WHERE id = %s"


def lease_locked(*, annotator_id: int, assignment_id: uuid.UUID, project_id: int | None = None) -> Assignment | None:
    """The annotator's own assignment, in a project they still belong to, locked for the submit
    (inside a transaction; PostgreSQL re-reads a row it waited for, so its state is the latest
    committed one), with its project and the item's id and withdrawal. None if there is none."""
    assert connection.in_atomic_block, "a lock needs a transaction"
    query = (
        f"SELECT {sql.columns(Assignment, 'a')}, {sql.columns(Project, 'p')}, i.id, i.withdrawn_at"  # noqa: S608
        " FROM labeling_assignment a"
        " INNER JOIN labeling_project p ON p.id = a.project_id"
        " INNER JOIN labeling_membership m ON m.project_id = a.project_id AND m.user_id = %s"
        " INNER JOIN labeling_item i ON i.id = a.item_id"
        " WHERE a.id = %s AND a.annotator_id = %s"
    )
    params = [annotator_id, sql.prep(Assignment, "id", assignment_id), annotator_id]
    if project_id is not None:
        query += " AND a.project_id = %s"
        params.append(project_id)
    if connection.features.has_select_for_update_of:
        query += " FOR UPDATE OF a"  # SQLite has no row locks: its transactions take the write lock at BEGIN
    row = sql.one(query, params)
    if row is None:
        return None
    assignment, assignment.project = sql.load_joined(row, Assignment, Project)
    assignment.item = sql.load(Item, ("id", "withdrawn_at"), row[-2:])  # the rest of the item loads if read
    return assignment


def _vote_params(item_id: int, *, released: bool, settle: bool) -> list:
    return [1 if released else 0, settle, item_id]


def _finish_params(lease: Assignment, finished_at) -> list:
    return [
        Assignment.State.SUBMITTED,
        sql.prep(Assignment, "finished_at", finished_at),
        sql.prep(Assignment, "id", lease.pk),
    ]


def vote_count(*, item_id: int, released: bool, settle: bool) -> tuple[int, int, int, bool]:
    """Add a vote to the item's counters (locking its row until commit, so concurrent submits on
    one item settle in turn): its votes, filled, target and is_complete afterwards."""
    return sql.one(
        _VOTE_SQL + " RETURNING votes, filled, target, is_complete",
        _vote_params(item_id, released=released, settle=settle),
    )


def lease_finish(*, lease: Assignment, finished_at) -> None:
    """The lease became a vote."""
    sql.execute(_FINISH_SQL, _finish_params(lease, finished_at))


def judgment_store_counted(*, judgment: Judgment, lease: Assignment, released: bool, finished_at) -> None:
    """PostgreSQL: count the vote (settling the item), close the lease and store the judgment in
    one statement. The judgment's foreign key checks run at the end of the statement, after the
    item row is locked by its update: the order `vote_count` then `sql.insert` keeps elsewhere,
    since upgrading the foreign key's share lock while a claim waits for the row deadlocks."""
    params = [*_vote_params(lease.item_id, released=released, settle=True), *_finish_params(lease, finished_at)]
    before = f"WITH vote AS ({_VOTE_SQL} RETURNING id), lease AS ({_FINISH_SQL} RETURNING id)"
    sql.insert(judgment, before=before, before_params=params)


def supports_one_statement() -> bool:
    """Whether `judgment_store_counted` can run here (PostgreSQL's data-modifying WITH)."""
    return connection.vendor == "postgresql"
