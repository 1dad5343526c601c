"""Hand-written SQL for the annotation loop's hot statements, where the ORM costs more than the database.

Building a query costs Django 0.3 to 1 ms of CPU; the statements of the annotation
loop (`next` and `submit`) are fixed, so here they are written once. Values go
through each field's own `get_db_prep_save` and rows back through the model's
converters (`Model.objects.raw`), so what is stored and read is what the ORM
would store and read, on SQLite and PostgreSQL alike.

On PostgreSQL these statements are sent with server-side parameters, so that psycopg
prepares each one on a connection from its second use (`prepare_threshold`, set in
settings unless DB_PREPARED_STATEMENTS=0): the server then skips parsing and planning
them, which was a fifth of the database's time per request. The ORM's statements keep
Django's client-side binding.
"""

import fcntl
import os
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


@cache
def _insert_sql(model: type[Model]) -> tuple[str, tuple]:
    fields = tuple(field for field in model._meta.concrete_fields)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = quote(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", fields  # noqa: S608 - names, not values


def insert(obj: M, *, before: str = "", before_params=()) -> M:
    """INSERT `obj` (a model with a client-side primary key, such as a UUID) as `save()` would, in one statement.

    `before`: a `WITH ...` clause of other changes (PostgreSQL) made by the same statement.
    """
    sql, fields = _insert_sql(type(obj))
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with _cursor() as cursor:
        cursor.execute(f"{before} {sql}" if before else sql, [*before_params, *params])
    # What `save()` records once a row exists (Django has no public way to say so): a later
    # `save()` updates the row instead of inserting it again.
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def _cursor():
    """A cursor for a hand-written statement: server-side binding where statements are prepared."""
    if connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    raw = ServerBindingCursor(connection.connection)
    # Django's own wrapper (its errors, and the query log when it is on), as `connection.cursor()` makes it.
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


def execute(sql: str, params) -> int:
    """Run one statement; returns the number of rows it changed."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def one(sql: str, params):
    """The first row of a query, or None."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def rows(sql: str, params) -> list:
    """Every row of a query."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def csv_field(expression: str, *, quoted: bool) -> str:
    """PostgreSQL: `expression` as one CSV field, for rows built with `string_agg` and parsed
    by a CSV reader. `quoted` for text that may hold commas, quotes or newlines; NULL is empty."""
    if quoted:
        return f"""coalesce('"' || replace(({expression})::text, '"', '""') || '"', '')"""
    return f"coalesce(({expression})::text, '')"


def prep(model: type[Model], field_name: str, value):
    """`value` as the database takes it for that field (a UUID on SQLite is text, a datetime too)."""
    return _field(model, field_name).get_db_prep_save(value, connection)


def _field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), f"{model.__name__}.{name} is a relation's reverse side, not a column"
    return field


@cache
def columns(model: type[Model], alias: str) -> str:
    """Every concrete column of `model`, qualified by `alias`, in field order (for `Model.objects.raw`)."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(str(field.column))}" for field in model._meta.concrete_fields)


def load(model: type[M], names: tuple[str, ...], values) -> M:
    """A `model` instance from raw column values (field attnames `names`), through the model's converters.

    Fields left out are deferred: reading one loads it, as with `.only()`.
    """
    converted = []
    for value, (column, converters) in zip(values, _converters(model, names), strict=True):
        for converter in converters:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, list(names), converted)


@cache
def _converters(model: type[Model], names: tuple[str, ...]):
    result = []
    for name in names:
        field = _field(model, name)
        column = field.get_col(model._meta.db_table)
        result.append((column, connection.ops.get_db_converters(column) + field.get_db_converters(connection)))
    return result


@cache
def field_names(model: type[Model]) -> tuple[str, ...]:
    """The attnames of every concrete field, in the order `columns` lists them."""
    return tuple(field.attname for field in model._meta.concrete_fields)


def load_joined(row, *models: type[Model]) -> list[Any]:
    """Instances of `models` from a row that lists each one's `columns`, in that order; any
    columns after them are left for the caller."""
    loaded, start = [], 0
    for model in models:
        names = field_names(model)
        loaded.append(load(model, names, row[start : start + len(names)]))
        start += len(names)
    return loaded


def in_values(values: list, *, bigint: bool = False) -> tuple[str, list]:
    """`IN (...)` over `values` and its parameters: one array parameter on PostgreSQL
    (`bigint`: sent as one array literal, cheaper than psycopg's list dumper for many ids)."""
    if connection.vendor == "postgresql":
        if bigint:
            return "= ANY(%s::bigint[])", ["{" + ",".join(map(str, values)) + "}"]
        return "= ANY(%s)", [list(values)]
    return f"IN ({', '.join(['%s'] * len(values))})", list(values)


@contextmanager
def commits_unsynced(enabled: bool = True):
    """SQLite: transactions begun inside commit without waiting for the disk (`synchronous =
    NORMAL` in WAL mode; the settings make FULL the rule). Only outside a transaction: SQLite
    refuses to change it inside one. A commit at FULL afterwards also makes these durable.
    PostgreSQL sets its own per transaction (`synchronous_commit`); elsewhere nothing changes."""
    if not enabled or connection.vendor != "sqlite" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous = NORMAL")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous = FULL")


def tables_analyze(*models: type[Model]) -> None:
    """Bring the planner's statistics of these tables up to date (PostgreSQL's ANALYZE).

    After an import adds a large share of a table, the plans made from the old statistics
    (an empty table, say) read every open item for each claim until autovacuum gets to it,
    if it ever does. ANALYZE reads a bounded sample (30,000 rows), so it costs the same at
    any size. SQLite keeps no statistics unless asked, and the statements here are written
    for its planner without them; nothing to do there.
    """
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(quote(model._meta.db_table) for model in models))


@contextmanager
def writers_in_turn():
    """SQLite: wait for the database's write lock in the kernel, not in SQLite's busy handler.

    A writer that finds the lock taken sleeps 1, 2, 5, 10 ... ms between tries in SQLite's
    handler, so under load its wait is as long as its last sleep, not as the writer before
    it. Taking an exclusive `flock` on a file beside the database first wakes the next writer
    as soon as one commits. The file is opened for each turn (a few microseconds), so threads
    queue as processes do and no descriptor outlives its thread (runserver starts one per
    request). Only around the annotation loop's transactions, and only outside a transaction;
    other writers still meet SQLite's own lock, which stays the real guard.
    """
    if connection.vendor != "sqlite" or connection.in_atomic_block or connection.is_in_memory_db():
        yield
        return
    turn = os.open(f"{connection.settings_dict['NAME']}-writers.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(turn, fcntl.LOCK_EX)
        yield
    finally:
        os.close(turn)  # closing the descriptor releases its lock
