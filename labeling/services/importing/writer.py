"""Write a batch of new items and their responses with plain SQL: the import's hot path.

`bulk_create` spent 80 % of an import building model instances and preparing values
one at a time. These functions write the same rows Django would: every concrete
column, the fields' Python defaults, `auto_now_add` timestamps, JSON as `json.dumps`
text and `None` as SQL NULL (a test compares them with rows saved through the ORM).
They run inside the import's transaction, so a failure anywhere leaves nothing.
"""

import json
import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import lru_cache

from django.db import connection, models
from django.utils import timezone

from labeling.db import sql
from labeling.models import Item, Project, Response
from labeling.services.parsing.batches import ITEM_VALUES, RESPONSE_VALUES, ItemBatch

__all__ = ["BatchWriter"]

# Columns each row sets itself; every other concrete column takes its field's default.
# Responses take their ids from the database (nothing refers to them during an import);
# items need theirs beforehand, for their responses' item_id: a batch's responses name
# their item by its index in the batch (ItemBatch), and the writer turns it into the id.
_ITEM_OWN = ("id", "project_id", "external_id", "prompt", "metadata", "reference", "is_gold", "gold_answer", "target")
_RESPONSE_OWN = ("item_id", "position", "model", "content", "metadata")
# SQLite's page cache during an import, for the import's connection only (then restored).
SQLITE_CACHE_KIB = 128 * 1024


class BatchWriter:
    """Checks and writes the batches of one import, in file order, on the import's connection.

    A batch is written in a thread while the caller takes in the next one (from the
    parsing process for a large file, or parsing it in this thread for a small one): on
    PostgreSQL the server loads rows meanwhile; on SQLite the engine runs without the
    GIL while it inserts them. A connection serves
    one command at a time, so every use of it waits for the batch in flight first; so
    does leaving the `with` block, before the transaction commits or rolls back.
    """

    def __init__(self, project: Project):
        self.project = project
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-write")
        self._in_flight: Future | None = None

    def __enter__(self) -> "BatchWriter":
        self._deferred_keys = ""
        self._was_empty = _lock_for_import(self.project)
        if connection.vendor == "postgresql":
            # The foreign keys of items and responses are checked at commit by default
            # (Django declares them INITIALLY DEFERRED): 300,000 checks per 100,000 pairs,
            # 1.2 s of the server's time after the last batch. Checked as each batch is
            # loaded instead, they overlap with the parsing of the next batch.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT string_agg(quote_ident(conname), ', ') FROM pg_constraint "
                    "WHERE contype = 'f' AND condeferred AND conrelid IN (%s::regclass, %s::regclass)",
                    [Item._meta.db_table, Response._meta.db_table],
                )
                self._deferred_keys = cursor.fetchone()[0] or ""
                if self._deferred_keys:
                    cursor.execute(f"SET CONSTRAINTS {self._deferred_keys} IMMEDIATE")
        if connection.vendor == "sqlite":
            # SQLite's default page cache (2 MB) is soon smaller than the item table's
            # index on external ids, which the import adds to at random places; with
            # 1,000,000 rows the misses and spills cost 3 s of the engine's 22.
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA cache_size")
                self._cache_size = cursor.fetchone()[0]
                cursor.execute(f"PRAGMA cache_size = {-SQLITE_CACHE_KIB}")
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.wait()
            if self._deferred_keys and exc_info[0] is None:
                with connection.cursor() as cursor:  # as declared again, for the rest of an outer transaction
                    cursor.execute(f"SET CONSTRAINTS {self._deferred_keys} DEFERRED")
        except Exception:
            if exc_info[0] is None:
                raise  # otherwise the first error is the one to report
        finally:
            self._pool.shutdown()
            if connection.vendor == "sqlite":
                with connection.cursor() as cursor:
                    cursor.execute(f"PRAGMA cache_size = {int(self._cache_size)}")

    def wait(self) -> None:
        """Until the batch in flight is written; its error, if any, is raised here."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            with connection.wrap_database_errors:  # psycopg's errors become Django's, as on any query
                in_flight.result()

    def existing(self, external_ids: list[str]) -> set[str]:
        """Which of `external_ids` the project held before this import (its own repeats are the caller's)."""
        if self._was_empty:  # nothing to find; on PostgreSQL the lookups were an eighth of the server's work
            return set()
        self.wait()
        return existing_external_ids(project=self.project, external_ids=external_ids)

    def write(self, items: ItemBatch) -> None:
        self.wait()
        # Everything that reads Django's connection happens here; the thread only talks to
        # the driver's own connection (Django opens SQLite's with check_same_thread=False).
        connection.ensure_connection()
        write = _write_postgresql if connection.vendor == "postgresql" else _write_sqlite
        self._in_flight = self._pool.submit(write, connection.connection, self.project, items, *_columns())


def _lock_for_import(project: Project) -> bool:
    """Take the project's import lock until the transaction ends; whether the project then has no items.

    Imports into one project run one at a time, so what one finds in the project stays
    true until it commits: an item another import adds meanwhile cannot turn a skip into
    a unique-constraint error. On SQLite the import's IMMEDIATE transaction already holds
    the database's one write lock; on PostgreSQL a transaction-scoped advisory lock keyed
    by the item table and the project serves (only imports add items).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s::regclass::oid::integer, %s)", [Item._meta.db_table, project.pk]
            )
    return not Item.objects.filter(project=project).exists()


def existing_external_ids(*, project: Project, external_ids: list[str]) -> set[str]:
    """Which of `external_ids` the project already holds (one query, one array parameter on PostgreSQL)."""
    if not external_ids:
        return set()
    table = connection.ops.quote_name(Item._meta.db_table)
    where, params = sql.in_values(external_ids)
    query = f"SELECT external_id FROM {table} WHERE project_id = %s AND external_id {where}"  # noqa: S608
    return {row[0] for row in sql.rows(query, [project.pk, *params])}


def _columns() -> tuple:
    """(item columns, their constant values, response columns, theirs): the same for every row of a batch."""
    now = timezone.now()
    item_defaults = _defaults(Item, _ITEM_OWN, now)
    response_defaults = _defaults(Response, _RESPONSE_OWN, now)
    return (
        _ITEM_OWN + tuple(item_defaults),
        tuple(item_defaults.values()),
        _RESPONSE_OWN + tuple(response_defaults),
        tuple(response_defaults.values()),
    )


def _write_postgresql(raw, project, batch: ItemBatch, item_columns, item_extra, response_columns, response_extra):
    project_id, target = project.pk, project.initial_target
    with raw.cursor() as cursor:  # psycopg's own: COPY is not part of the DB-API
        item_ids = _reserve_postgresql(cursor, Item, len(batch))
        with cursor.copy(_copy_sql(Item, item_columns)) as copy:
            for index, external_id, prompt, metadata, reference, gold_answer in batch.item_rows():
                is_gold = gold_answer is not None
                row = (item_ids[index], project_id, external_id, prompt, metadata, reference, is_gold, gold_answer)
                copy.write_row((*row, target, *item_extra))
        with cursor.copy(_copy_sql(Response, response_columns)) as copy:
            for index, *values in batch.response_rows():
                copy.write_row((item_ids[index], *values, *response_extra))


def _reserve_postgresql(cursor, model, count: int) -> list[int]:
    """`count` ids from the table's sequence, so that later inserts never collide with ours.

    The sequence is looked up once per batch (MATERIALIZED keeps the planner from
    folding the lookup into every `nextval`): a catalog lookup per id was 0.1 to 0.2 s
    of the server's 2.6 s per 100,000 pairs.
    """
    cursor.execute(
        "WITH sequence AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS id) "
        "SELECT array_agg(nextval(sequence.id)) FROM sequence, generate_series(1, %s)",
        [model._meta.db_table, count],
    )
    return cursor.fetchone()[0]


def _copy_sql(model, columns) -> str:
    # Quoted as PostgreSQL's quote_name does, without reaching for Django's connection from the thread.
    names = ", ".join(map(_quote, columns))
    return f"COPY {_quote(model._meta.db_table)} ({names}) FROM STDIN"


# What SQLite inserts for each column of _ITEM_OWN and _RESPONSE_OWN, then the defaults:
# ids from the batch's first id plus the item's index, and values the whole batch shares
# bound once per statement rather than once per row.
_ITEM_SELECT = ("? + column1", "?", "column2", "column3", "column4", "column5", "column6 IS NOT NULL", "column6", "?")
_RESPONSE_SELECT = ("? + column1", "column2", "column3", "column4", "column5")


def _write_sqlite(raw, project, batch: ItemBatch, item_columns, item_extra, response_columns, response_extra):
    # The import's transaction is IMMEDIATE (settings), so it holds the write lock
    # from its start: no other writer can take the ids that follow the largest one.
    cursor = raw.cursor()
    try:
        first_item = _next_id_sqlite(cursor, Item)
        item_select = _ITEM_SELECT + ("?",) * len(item_extra)
        item_constants = [first_item, project.pk, project.initial_target, *item_extra]
        _insert_sqlite(cursor, Item, item_columns, item_select, item_constants, ITEM_VALUES, batch.items)
        response_select = _RESPONSE_SELECT + ("?",) * len(response_extra)
        response_constants = [first_item, *response_extra]
        _insert_sqlite(
            cursor, Response, response_columns, response_select, response_constants, RESPONSE_VALUES, batch.responses
        )
    finally:
        cursor.close()


def _next_id_sqlite(cursor, model) -> int:
    """The id after both the largest in the table and the largest AUTOINCREMENT ever gave out."""
    table = model._meta.db_table
    cursor.execute(
        f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {_quote(table)}), 0), "  # noqa: S608 - names from the model
        "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0))",
        [table],
    )
    return cursor.fetchone()[0] + 1


# Rows per multi-row INSERT at most: one statement (one call into SQLite, which then runs
# without the GIL) inserts them all.
SQLITE_ROWS_PER_STATEMENT = 1000


def _insert_sqlite(cursor, model, columns, select, constants: list, width: int, values: list) -> None:
    """Insert the rows of `values` (flat, `width` values per row) as `select` reads them from a VALUES list."""
    variables = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 32,766; 999 before 3.32
    chunk = min(SQLITE_ROWS_PER_STATEMENT, (variables - len(constants)) // width)
    rows = len(values) // width
    for start in range(0, rows, chunk):
        count = min(chunk, rows - start)
        statement = _insert_sql(model._meta.db_table, columns, select, width, count)
        cursor.execute(statement, constants + values[start * width : (start + count) * width])


@lru_cache(maxsize=16)
def _insert_sql(table: str, columns: tuple[str, ...], select: tuple[str, ...], width: int, rows: int) -> str:
    """INSERT ... SELECT `select` FROM a VALUES list of `rows` rows (SQLite: `?` placeholders, names
    quoted as its quote_name does; a VALUES list's columns are column1, column2, ...)."""
    names = ", ".join(map(_quote, columns))
    values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * rows)
    return f"INSERT INTO {_quote(table)} ({names}) SELECT {', '.join(select)} FROM (VALUES {values})"  # noqa: S608


def _quote(name: str) -> str:
    return f'"{name}"'


def _defaults(model, own: tuple[str, ...], now: datetime) -> dict[str, object]:
    """Database values of the columns a row does not set: what `Model(...)` and `save()` would store
    (a primary key a row does not set is the database's to give)."""
    values = {}
    for field in model._meta.concrete_fields:
        if field.column in own or field.primary_key:
            continue
        if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
            value = now
        else:
            value = field.get_default()
        if isinstance(field, models.JSONField):
            values[field.column] = None if value is None else json.dumps(value)
        else:
            values[field.column] = field.get_db_prep_save(value, connection)
    return values
