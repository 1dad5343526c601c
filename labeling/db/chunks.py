"""Large reads in bounded memory: a query's rows as pandas DataFrames, a chunk at a time.

On PostgreSQL each chunk comes as one CSV value built by `string_agg` and read by pandas'
C parser, through a server-side cursor; elsewhere (SQLite) through `fetchmany`.
"""

import contextlib
import io
from collections.abc import Iterator

import pandas as pd
from django.db import DatabaseError, connection

from labeling.db.sql import csv_field

STATS_WORK_MEM = "128MB"
# Rows per chunk: what is held at once besides the finished columns (a few MB at 10 columns).
CHUNK_ROWS = 65_536


def row_chunks(
    queryset, names: list[str], *, text: tuple[str, ...] = (), chunk_rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """Run a values_list() queryset and yield its rows as DataFrames of at most `chunk_rows`
    rows (CHUNK_ROWS) with columns `names`, in no particular order, so that memory is
    bounded by a chunk, not by the project.

    Columns named in `text` are strings (object dtype, NaN for NULL); the others are
    numbers (float64 where a value is NULL). On PostgreSQL each chunk comes as one CSV
    value built by `string_agg` and read by pandas' C parser, through a server-side
    cursor: rows fetched one by one cost seconds of Python time at a million (as Python
    tuples, or as COPY rows, about 1 s more than this), one value per chunk a few
    milliseconds. Elsewhere (SQLite) through `fetchmany`. Run the reads of a big project
    inside `reading_memory()`.
    """
    chunk_rows = int(chunk_rows or CHUNK_ROWS)
    sql, params = queryset.query.sql_with_params()
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(chunk_rows):
                yield pd.DataFrame.from_records(rows, columns=names, coerce_float=True)
        return
    columns = [f"c{index}" for index in range(len(names))]
    fields = ", ".join(csv_field(column, quoted=name in text) for name, column in zip(names, columns, strict=True))
    # Only column names made here, an integer and the ORM's own SQL go into the text; values
    # stay parameters. As bytes (bytea), not text: a Python str, and the four bytes a
    # character io.StringIO keeps, would cost several times the CSV.
    chunked_sql = (
        f"SELECT convert_to(string_agg(concat_ws(',', {fields}), chr(10)), 'UTF8') "  # noqa: S608
        f"FROM (SELECT *, (row_number() OVER () - 1) / {chunk_rows} AS chunk "
        f"FROM ({sql}) AS rows ({', '.join(columns)})) AS numbered GROUP BY chunk"
    )
    with connection.chunked_cursor() as cursor:
        cursor.execute(chunked_sql, params)
        while fetched := cursor.fetchmany(1):
            yield _csv(fetched[0][0], names, text=text)


@contextlib.contextmanager
def reading_memory():
    """On PostgreSQL, room in the server's memory for the reads of `row_chunks`: the
    judgments-assignments hash join (about 90 MB at a million rows) and the chunks'
    aggregate. With the default 4 MB both spill to disk, twice the time. One SET for all
    the reads of an analysis, reset at the end."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET work_mem = '{STATS_WORK_MEM}'")
    try:
        yield
    finally:
        # In a transaction a failed query aborted, the SET is rolled back with it.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("RESET work_mem")


def _csv(data: bytes, names: list[str], *, text: tuple[str, ...]) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data),
        encoding="utf-8",
        header=None,
        names=names,
        dtype={name: "object" for name in text},
        keep_default_na=False,
        na_values={name: [""] for name in names},
    )
