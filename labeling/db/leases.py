"""The annotation loop's lease statements: lock an annotator's turn, read their leases, claim an item.

What an annotator may be given is written here once, as SQL fragments that every claim
statement shares (`OPEN`, `NEVER_HAD`): the service decides the order of work and when to
search further; the statements only find and lock. Both databases side by side:
PostgreSQL locks rows (`FOR UPDATE ... SKIP LOCKED`); SQLite has no row locks, its IMMEDIATE
transactions take the database's write lock at BEGIN, so a claim there cannot race.
"""

from functools import cache

from django.db import connection

from labeling.db import sql
from labeling.models import Assignment, Item, Response

# An item that still needs a vote: not complete, not gold, not withdrawn, a free slot.
OPEN = "NOT {t}.is_complete AND NOT {t}.is_gold AND {t}.withdrawn_at IS NULL AND {t}.filled < {t}.target"
# The annotator (%(annotator)s) was never given it.
NEVER_HAD = (
    "NOT EXISTS (SELECT 1 FROM labeling_assignment a WHERE a.item_id = {t}.id AND a.annotator_id = %(annotator)s)"
)
# No slot taken yet. `filled < 1` rather than `= 0`, ordered by (priority, filled, id): the
# breadth-first index's own order, which SQLite reads without sorting every open item.
UNTOUCHED = "{t}.filled < 1"
UNTOUCHED_ORDER = ("-priority", "filled", "id")

RESPONSE_FIELDS = ("id", "item_id", "position", "model", "content", "metadata")
_RESPONSES_SQL = f"SELECT {', '.join(RESPONSE_FIELDS)} FROM labeling_response WHERE item_id = %s ORDER BY position"  # noqa: S608


def _order(order_by: tuple[str, ...], table: str) -> str:
    """`order_by` (ORM style: "-priority", "id") as SQL on `table`."""
    return ", ".join(f"{table}.{name[1:]} DESC" if name.startswith("-") else f"{table}.{name} ASC" for name in order_by)


def _where(table: str, *fragments: str) -> str:
    return " AND ".join(fragment.format(t=table) for fragment in fragments)


def membership_lock(*, project_id: int, user_id: int, asynchronous: bool) -> bool:
    """Lock the annotator's membership row (their turn in the project); False if they are not a member.

    `asynchronous` (PostgreSQL, the lease's own transaction): the same statement makes the
    transaction commit without waiting for its WAL to reach the disk.
    """
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    set_async = ", set_config('synchronous_commit', 'off', true)" if asynchronous and _postgresql() else ""
    row = sql.one(
        f"SELECT id{set_async} FROM labeling_membership WHERE project_id = %s AND user_id = %s{lock}",  # noqa: S608
        [project_id, user_id],
    )
    return row is not None


def active_leases(*, project_id: int, annotator_id: int) -> list[Assignment]:
    """The annotator's live leases in the project, each with its item."""
    rows = sql.rows(
        f"SELECT {sql.columns(Assignment, 'a')}, {sql.columns(Item, 'i')} FROM labeling_assignment a"  # noqa: S608
        " INNER JOIN labeling_item i ON i.id = a.item_id"
        " WHERE a.annotator_id = %s AND a.project_id = %s AND a.state = %s",
        [annotator_id, project_id, Assignment.State.ACTIVE],
    )
    leases = []
    for row in rows:
        lease, lease.item = sql.load_joined(row, Assignment, Item)
        leases.append(lease)
    return leases


# PostgreSQL: lock the first open item of the window this annotator never had (skip_locked),
# take its slot, and return it with its responses, in one statement.
_CLAIM_WINDOW_POSTGRESQL = """
WITH claimed AS (
    UPDATE labeling_item SET filled = filled + 1
    WHERE id = (
        SELECT i.id FROM labeling_item i
        WHERE i.id IN (
            SELECT u.id FROM labeling_item u WHERE u.project_id = %(project)s AND {u_open}
            ORDER BY {u_order} LIMIT {window}
        )
        AND {i_open} AND {i_never_had}
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
# statement. The window is a derived table: written as `id IN (...)`, SQLite walked the whole
# open-items index testing membership (1.4-2.7 ms at 20,000 items).
_CLAIM_WINDOW_SQLITE = """
UPDATE labeling_item SET filled = filled + 1
WHERE id = coalesce(
    (SELECT w.id FROM (
        SELECT u.id, u.priority, u.filled FROM labeling_item u WHERE u.project_id = %(project)s AND {u_open}
        ORDER BY {u_order} LIMIT {window}
    ) w
    WHERE {w_never_had}
    ORDER BY {w_order} LIMIT 1),
    (SELECT u.id FROM labeling_item u
    WHERE u.project_id = %(project)s AND {u_untouched_open} AND {u_never_had}
    ORDER BY {u_untouched_order} LIMIT 1)
)
RETURNING {columns}
"""


@cache
def _claim_window_sql(vendor: str, order_by: tuple[str, ...], window: int) -> str:
    template = _CLAIM_WINDOW_POSTGRESQL if vendor == "postgresql" else _CLAIM_WINDOW_SQLITE
    return template.format(
        u_open=_where("u", OPEN),
        i_open=_where("i", OPEN),
        i_never_had=_where("i", NEVER_HAD),
        w_never_had=_where("w", NEVER_HAD),
        u_never_had=_where("u", NEVER_HAD),
        u_untouched_open=_where("u", UNTOUCHED, OPEN),
        u_order=_order(order_by, "u"),
        i_order=_order(order_by, "i"),
        w_order=_order(order_by, "w"),
        u_untouched_order=_order(UNTOUCHED_ORDER, "u"),
        columns=sql.columns(Item, "c") if vendor == "postgresql" else sql.columns(Item, "labeling_item"),
        window=int(window),  # written in: a prepared statement's generic plan then knows it
    )


def claim_window(
    *, project_id: int, annotator_id: int, order_by: tuple[str, ...], window: int
) -> tuple[Item, list[Response]] | None:
    """Claim, in one statement, the first open item among the first `window` in `order_by` that
    the annotator never had (SQLite: else the first untouched one): its slot is taken. The item
    and its responses, or None.

    Where this finds nothing, `claim_first` searches the whole project; on SQLite the untouched
    items were searched here already (`searches_untouched`).
    """
    vendor = connection.vendor
    row = sql.one(_claim_window_sql(vendor, order_by, window), {"project": project_id, "annotator": annotator_id})
    if row is None:
        return None
    (item,) = sql.load_joined(row, Item)
    if vendor == "postgresql":  # the responses' JSON follows the item's columns
        responses = [Response.from_db(connection.alias, RESPONSE_FIELDS, values) for values in row[-1] or []]
    else:
        responses = responses_of(item.pk)
    return item, responses


def searches_untouched() -> bool:
    """Whether `claim_window` also searched the untouched items (SQLite's statement does)."""
    return not _postgresql()


@cache
def _claim_first_sql(vendor: str, order_by: tuple[str, ...], untouched: bool, wait: bool) -> str:
    lock = ""
    if vendor == "postgresql":
        lock = " FOR UPDATE OF i" if wait else " FOR UPDATE OF i SKIP LOCKED"
    conditions = (UNTOUCHED, OPEN, NEVER_HAD) if untouched else (OPEN, NEVER_HAD)
    return (
        f"SELECT {sql.columns(Item, 'i')} FROM labeling_item i"  # noqa: S608 - column names, values are params
        f" WHERE i.project_id = %(project)s AND {_where('i', *conditions)}"
        f" ORDER BY {_order(order_by, 'i')} LIMIT 1{lock}"
    )


def claim_first(
    *, project_id: int, annotator_id: int, order_by: tuple[str, ...], untouched: bool = False, wait: bool = False
) -> Item | None:
    """Lock the first open item in `order_by`, in the whole project, that the annotator never had
    (`untouched`: with no slot taken yet). Rows other claims hold are skipped, unless `wait`:
    then "nothing left" is true. The slot is not taken (see `slot_take`)."""
    row = sql.one(
        _claim_first_sql(connection.vendor, order_by, untouched, wait),
        {"project": project_id, "annotator": annotator_id},
    )
    if row is None:
        return None
    (item,) = sql.load_joined(row, Item)
    return item


def gold_unseen(*, project_id: int, annotator_id: int, limit: int) -> list[int]:
    """The ids of at most `limit` gold items of the project, not withdrawn, the annotator never had.
    Gold items have no overlap: every annotator may answer each one once."""
    query = (
        "SELECT i.id FROM labeling_item i WHERE i.project_id = %(project)s AND i.is_gold"  # noqa: S608 - fragments, values are params
        f" AND i.withdrawn_at IS NULL AND {_where('i', NEVER_HAD)} LIMIT %(limit)s"
    )
    params = {"project": project_id, "annotator": annotator_id, "limit": limit}
    return [row[0] for row in sql.rows(query, params)]


def slot_take(item_id: int) -> None:
    """One more of the item's slots is held (by the lease about to be inserted)."""
    sql.execute("UPDATE labeling_item SET filled = filled + 1 WHERE id = %s", [item_id])


def responses_of(item_id: int) -> list[Response]:
    """The item's responses, in their stored order."""
    return [sql.load(Response, RESPONSE_FIELDS, values) for values in sql.rows(_RESPONSES_SQL, [item_id])]


def _postgresql() -> bool:
    return connection.vendor == "postgresql"
