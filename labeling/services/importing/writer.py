"""Write a batch of new items and their responses with plain SQL: the import's hot path.

`bulk_create` spent 80 % of an import building model instances and preparing values
one at a time. These functions write the same rows Django would: every concrete
column, the fields' Python defaults, `auto_now_add` timestamps, JSON as `json.dumps`
text and `None` as SQL NULL (a test compares them with rows saved through the ORM).
They run inside the import's transaction, so a failure anywhere leaves nothing.
"""

import json
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from django.db import connection, models
from django.utils import timezone

from labeling.models import Item, Project, Response
from labeling.services import sql
from labeling.services.importing.shapes import NormalizedItem

__all__ = ["BatchWriter"]

# Columns each row sets itself; every other concrete column takes its field's default.
# Responses take their ids from the database (nothing refers to them during an import);
# items need theirs beforehand, for their responses' item_id.
_ITEM_OWN = ("id", "project_id", "external_id", "prompt", "metadata", "reference", "is_gold", "gold_answer", "target")
_RESPONSE_OWN = ("item_id", "position", "model", "content", "metadata")


class BatchWriter:
    """Checks and writes the batches of one import, in file order, on the import's connection.

    On PostgreSQL a batch's COPY runs in a thread while the caller validates the next
    batch, so that the server loads rows while Python parses them. A connection serves
    one command at a time, so every use of it waits for the batch in flight first; so
    does leaving the `with` block, before the transaction commits or rolls back.
    """

    def __init__(self, project: Project):
        self.project = project
        self._threaded = connection.vendor == "postgresql"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-copy") if self._threaded else None
        self._in_flight: Future | None = None

    def __enter__(self) -> "BatchWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.wait()
        except Exception:
            if exc_info[0] is None:
                raise  # otherwise the first error is the one to report
        finally:
            if self._pool:
                self._pool.shutdown()

    def wait(self) -> None:
        """Until the batch in flight is written; its error, if any, is raised here."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            with connection.wrap_database_errors:  # psycopg's errors become Django's, as on any query
                in_flight.result()

    def existing(self, external_ids: list[str]) -> set[str]:
        self.wait()
        return existing_external_ids(project=self.project, external_ids=external_ids)

    def write(self, items: Sequence[NormalizedItem]) -> None:
        self.wait()
        if not self._threaded:
            _write_sqlite(self.project, items, *_columns())
            return
        # Everything that reads Django's connection happens here; the thread only talks to psycopg.
        connection.ensure_connection()
        args = (connection.connection, self.project, items, *_columns())
        self._in_flight = self._pool.submit(_write_postgresql, *args)


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


def _item_rows(project: Project, items, item_ids, extra):
    project_id, target = project.pk, project.initial_target
    for item_id, item in zip(item_ids, items, strict=True):
        yield (
            item_id,
            project_id,
            item.external_id,
            json.dumps(item.prompt),
            _json_object(item.metadata),
            None if item.reference is None else json.dumps(item.reference),
            item.gold_answer is not None,
            None if item.gold_answer is None else json.dumps(item.gold_answer),
            target,
            *extra,
        )


def _response_rows(items, item_ids, extra):
    for item_id, item in zip(item_ids, items, strict=True):
        for position, response in enumerate(item.responses):
            yield (item_id, position, response.model, response.content, _json_object(response.metadata), *extra)


def _write_postgresql(raw, project, items, item_columns, item_extra, response_columns, response_extra) -> None:
    with raw.cursor() as cursor:  # psycopg's own: COPY is not part of the DB-API
        item_ids = _reserve_postgresql(cursor, Item, len(items))
        with cursor.copy(_copy_sql(Item, item_columns)) as copy:
            for row in _item_rows(project, items, item_ids, item_extra):
                copy.write_row(row)
        with cursor.copy(_copy_sql(Response, response_columns)) as copy:
            for row in _response_rows(items, item_ids, response_extra):
                copy.write_row(row)


def _reserve_postgresql(cursor, model, count: int) -> list[int]:
    """`count` ids from the table's sequence, so that later inserts never collide with ours."""
    cursor.execute(
        "SELECT array_agg(nextval(pg_get_serial_sequence(%s, 'id'))) FROM generate_series(1, %s)",
        [model._meta.db_table, count],
    )
    return cursor.fetchone()[0]


def _copy_sql(model, columns) -> str:
    # Quoted as PostgreSQL's quote_name does, without reaching for Django's connection from the thread.
    names = ", ".join(f'"{column}"' for column in columns)
    return f'COPY "{model._meta.db_table}" ({names}) FROM STDIN'


def _write_sqlite(project, items, item_columns, item_extra, response_columns, response_extra) -> None:
    # The import's transaction is IMMEDIATE (settings), so it holds the write lock
    # from its start: no other writer can take the ids that follow the largest one.
    with connection.cursor() as cursor:
        first_item = _next_id_sqlite(cursor, Item)
        item_ids = range(first_item, first_item + len(items))
        cursor.executemany(_insert_sql(Item, item_columns), _item_rows(project, items, item_ids, item_extra))
        cursor.executemany(_insert_sql(Response, response_columns), _response_rows(items, item_ids, response_extra))


def _next_id_sqlite(cursor, model) -> int:
    """The id after both the largest in the table and the largest AUTOINCREMENT ever gave out."""
    table = model._meta.db_table
    cursor.execute(
        f"SELECT MAX(COALESCE((SELECT MAX(id) FROM {connection.ops.quote_name(table)}), 0), "  # noqa: S608 - names from the model
        "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0))",
        [table],
    )
    return cursor.fetchone()[0] + 1


def _insert_sql(model, columns) -> str:
    quote = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(columns))
    table, names = quote(model._meta.db_table), ", ".join(map(quote, columns))
    return f"INSERT INTO {table} ({names}) VALUES ({placeholders})"  # noqa: S608 - names from the model


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


def _json_object(value: dict) -> str:
    return json.dumps(value) if value else "{}"
