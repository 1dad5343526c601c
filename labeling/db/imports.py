"""The import's statements: its lock, its session settings, its lookup and its bulk writes.

Both databases side by side, one function per statement. The rules stay in the service
(`services.importing`): which rows are new, what a new item's target is, when to wait
for a batch. The rows arrive as `import_rows` lays them out, and are stored as the ORM
would store them: every concrete column, the fields' Python defaults, `auto_now_add`
timestamps, JSON as `json.dumps` text and `None` as SQL NULL (a test compares them with
rows saved through the ORM). Everything runs inside the import's transaction, so a
failure anywhere leaves nothing.
"""

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache, partial
from typing import NamedTuple

from django.db import connection, models
from django.utils import timezone

from labeling.db import sql
from labeling.db.import_rows import ITEM, RESPONSE, RowLayout
from labeling.models import Item, Response

__all__ = ["batch_insert", "bulk_load", "existing_external_ids", "import_lock"]

# SQLite's page cache during an import, for the import's connection only (then restored).
SQLITE_CACHE_KIB = 128 * 1024
# Rows per multi-row INSERT at most: one statement (one call into SQLite, which then runs
# without the GIL) inserts them all.
SQLITE_ROWS_PER_STATEMENT = 1000


def import_lock(*, project_id: int) -> None:
    """Hold the project's import lock until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock keyed by the item table and the project
    (only imports add items). SQLite: nothing to take; the import's IMMEDIATE transaction
    already holds the database's one write lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s::regclass::oid::integer, %s)", [Item._meta.db_table, project_id]
            )


@contextmanager
def bulk_load(*tables: type[models.Model]) -> Iterator[None]:
    """Set the session up for loading many rows into `tables` within the block, and back after.

    PostgreSQL: the tables' foreign keys, which Django declares INITIALLY DEFERRED and so
    checks at commit (300,000 checks per 100,000 pairs, 1.2 s of the server's time after the
    last batch), are checked as each statement loads its rows, overlapping with the parsing
    of the next batch; declared deferred again when the block succeeds, for the rest of an
    outer transaction (when it fails, the transaction is lost anyway).
    SQLite: the page cache grows to SQLITE_CACHE_KIB. Its default (2 MB) is soon smaller
    than the item table's index on external ids, which an import adds to at random places;
    with 1,000,000 rows the misses and spills cost 3 s of the engine's 22.
    """
    if connection.vendor == "postgresql":
        names = ", ".join(["%s::regclass"] * len(tables))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT string_agg(quote_ident(conname), ', ') FROM pg_constraint "  # noqa: S608 - placeholders
                f"WHERE contype = 'f' AND condeferred AND conrelid IN ({names})",
                [model._meta.db_table for model in tables],
            )
            deferred = cursor.fetchone()[0]
            if deferred:
                cursor.execute(f"SET CONSTRAINTS {deferred} IMMEDIATE")
        yield
        if deferred:
            with connection.cursor() as cursor:
                cursor.execute(f"SET CONSTRAINTS {deferred} DEFERRED")
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = {-SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


def existing_external_ids(*, project_id: int, external_ids: list[str]) -> set[str]:
    """Which of `external_ids` the project holds: one query (one array parameter on PostgreSQL,
    a list of placeholders on SQLite, as `sql.in_values` writes them)."""
    if not external_ids:
        return set()
    table = connection.ops.quote_name(Item._meta.db_table)
    where, params = sql.in_values(external_ids)
    query = f"SELECT external_id FROM {table} WHERE project_id = %s AND external_id {where}"  # noqa: S608
    return {row[0] for row in sql.rows(query, [project_id, *params])}


class _Rows(NamedTuple):
    """One table's part of a batch, and what a statement needs to write it."""

    table: str
    layout: RowLayout
    columns: tuple[str, ...]  # the layout's columns, then those taking their defaults
    constants: tuple  # the values of the layout's shared columns, then the defaults
    values: list  # flat, as the layout lays them out


def batch_insert(*, items: list, responses: list, item_shared: dict[str, object]) -> Callable[[], None]:
    """The statements that store one batch: `items` and `responses` laid out as `import_rows.ITEM`
    and `RESPONSE` lay them out, `item_shared` the value of each of ITEM's shared columns.

    Everything that reads Django's connection happens here, in the caller's thread; the
    function returned talks only to the driver's own connection, so it may run in another
    thread while this one reads the next batch (Django opens SQLite's connection with
    check_same_thread=False). Nothing else may use the connection until it returns.
    """
    if set(item_shared) != set(ITEM.shared):
        raise ValueError(f"item_shared must name {sorted(ITEM.shared)}, not {sorted(item_shared)}")
    now = timezone.now()
    item_rows = _rows(Item, ITEM, item_shared, items, now)
    response_rows = _rows(Response, RESPONSE, {}, responses, now)
    connection.ensure_connection()
    insert = _insert_postgresql if connection.vendor == "postgresql" else _insert_sqlite
    return partial(insert, connection.connection, item_rows, response_rows)


def _rows(model, layout: RowLayout, shared: dict, values: list, now: datetime) -> _Rows:
    defaults = _defaults(model, layout.columns, now)
    constants = (*(shared[column] for column in layout.shared), *defaults.values())
    return _Rows(model._meta.db_table, layout, layout.columns + tuple(defaults), constants, values)


# -- PostgreSQL: ids from the sequence, then COPY ----------------------------------------


def _insert_postgresql(raw, items: _Rows, responses: _Rows) -> None:
    with raw.cursor() as cursor:  # psycopg's own: COPY is not part of the DB-API
        item_ids = _reserve_postgresql(cursor, items.table, len(items.values) // items.layout.width)
        _copy(cursor, items, item_ids)
        _copy(cursor, responses, item_ids)


def _reserve_postgresql(cursor, table: str, count: int) -> list[int]:
    """`count` ids from the table's sequence, so that later inserts never collide with ours.

    The sequence is looked up once per batch (MATERIALIZED keeps the planner from
    folding the lookup into every `nextval`): a catalog lookup per id was 0.1 to 0.2 s
    of the server's 2.6 s per 100,000 pairs.
    """
    cursor.execute(
        "WITH sequence AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS id) "
        "SELECT array_agg(nextval(sequence.id)) FROM sequence, generate_series(1, %s)",
        [table, count],
    )
    return cursor.fetchone()[0]


def _copy(cursor, rows: _Rows, item_ids: list[int]) -> None:
    """COPY the rows, each item's index in the batch made its id."""
    constants = rows.constants
    # Quoted as PostgreSQL's quote_name does, without reaching for Django's connection from the thread.
    statement = f"COPY {_quote(rows.table)} ({', '.join(map(_quote, rows.columns))}) FROM STDIN"
    with cursor.copy(statement) as copy:
        for index, *values in rows.layout.rows(rows.values):
            copy.write_row((item_ids[index], *values, *constants))


# -- SQLite: ids after the largest, then multi-row INSERTs -------------------------------


def _insert_sqlite(raw, items: _Rows, responses: _Rows) -> None:
    # The import's transaction is IMMEDIATE (settings), so it holds the write lock
    # from its start: no other writer can take the ids that follow the largest one.
    cursor = raw.cursor()
    try:
        first_item = _next_id_sqlite(cursor, items.table)
        _insert_rows_sqlite(cursor, items, first_item)
        _insert_rows_sqlite(cursor, responses, first_item)
    finally:
        cursor.close()


def _next_id_sqlite(cursor, table: str) -> int:
    """The id after both the largest in the table and the largest AUTOINCREMENT ever gave out."""
    cursor.execute(
        f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {_quote(table)}), 0), "  # noqa: S608 - names from the model
        "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))",
        [table],
    )
    return cursor.fetchone()[0] + 1


def _insert_rows_sqlite(cursor, rows: _Rows, first_item: int) -> None:
    """INSERT the rows, a statement per chunk, each reading its rows from a VALUES list: an
    item's index plus the batch's first item id is its id, and the values the whole batch
    shares are bound once per statement rather than once per row."""
    width = rows.layout.width
    # A VALUES list's columns are column1, column2, ...: column1 is the index.
    select = ("? + column1", *(f"column{number}" for number in range(2, width + 1)), *["?"] * len(rows.constants))
    constants = [first_item, *rows.constants]
    variables = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 32,766; 999 before 3.32
    chunk = min(SQLITE_ROWS_PER_STATEMENT, (variables - len(constants)) // width)
    values = rows.values
    count = len(values) // width
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        statement = _insert_sql(rows.table, rows.columns, select, width, size)
        cursor.execute(statement, constants + values[start * width : (start + size) * width])


@lru_cache(maxsize=16)
def _insert_sql(table: str, columns: tuple[str, ...], select: tuple[str, ...], width: int, rows: int) -> str:
    """INSERT ... SELECT `select` FROM a VALUES list of `rows` rows (SQLite: `?` placeholders, names
    quoted as its quote_name does)."""
    names = ", ".join(map(_quote, columns))
    values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * rows)
    return f"INSERT INTO {_quote(table)} ({names}) SELECT {', '.join(select)} FROM (VALUES {values})"  # noqa: S608


def _quote(name: str) -> str:
    return f'"{name}"'


def _defaults(model, own: tuple[str, ...], now: datetime) -> dict[str, object]:
    """Database values of the columns a row does not set: what `Model(...)` and `save()` would store
    (a primary key a row does not set is the database's to give)."""
    values: dict[str, object] = {}
    for field in model._meta.concrete_fields:
        if field.column in own or field.primary_key:
            continue
        assert field.column is not None  # a concrete field has a column
        if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
            value = now
        else:
            value = field.get_default()
        if isinstance(field, models.JSONField):
            values[field.column] = None if value is None else json.dumps(value)
        else:
            values[field.column] = field.get_db_prep_save(value, connection)
    return values
