"""Each of the export's statements (`labeling.db.export`) on this run's database, by every reader it has
there: Django's connection (inside a transaction) and, outside one, the ADBC readers (PostgreSQL:
connections of their own; SQLite: the reading process, on a copy of the database file). A
statement's rows are what the ORM reads for the same rows, in `SCHEMAS`' types."""

import datetime as dt
import json
import sqlite3
import uuid
from contextlib import closing

import pyarrow as pa
import pytest
from django.db import connection

from labeling.db import export as db_export
from labeling.db import export_readers
from labeling.models import Assignment, Judgment, Response
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

AT = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
PROMPT = [
    {"role": "system", "content": "Line one\nline two\r\n\ttabbed"},
    {"role": "user", "content": 'Quote " backslash \\ ünïcode ✓'},
]
# (item, annotator, ranking as positions, strength, seconds, microseconds of created_at, extras), in submit order.
# The first judgments have no `seconds`: SQLite's driver types a column from its first rows.
VOTES = [
    ("first", 0, [[0], [1]], None, None, 0, {}),
    ("first", 1, [[1], [0]], 2, None, 123456, {"both_bad": True, "late": True}),
    ("first", 2, [[0, 1]], 3, 4.5, 500000, {"rationale": "because\nof ✓", "criteria": {"tone": 2, "ä": [1, None]}}),
    ("gold", 0, [[1], [0]], 1, 0.1 + 0.2, 1, {}),
    ("second", 1, [[2], [0], [1]], None, 3.0, 0, {}),
]


def _project():
    project = ProjectFactory(slug="statements", overlap=3)
    users = [MembershipFactory(project=project, user__username=f"statements-{n}").user for n in range(3)]
    items = {
        "first": ItemFactory(project=project, external_id="first", prompt=PROMPT),
        "gold": ItemFactory(project=project, external_id="gold", is_gold=True),
        "unjudged": ItemFactory(project=project, external_id="unjudged"),
        "second": ItemFactory(project=project, external_id="second", responses=["a", "b", "c"]),
    }
    Response.objects.filter(item=items["second"], position=1).update(model="")  # an unknown model
    for serial, (name, annotator, ranking, strength, seconds, micro, extras) in enumerate(VOTES, start=1):
        item = items[name]
        ids = list(Response.objects.filter(item=item).order_by("position").values_list("pk", flat=True))
        assignment = Assignment.objects.create(
            project=project,
            item=item,
            annotator=users[annotator],
            state=Assignment.State.SUBMITTED,
            shown_order=list(reversed(ids)),
            expires_at=AT,
        )
        judgment = Judgment.objects.create(
            id=uuid.uuid4(),
            assignment=assignment,
            project=project,
            item=item,
            annotator=users[annotator],
            ranking=[[ids[position] for position in group] for group in ranking],
            strength=strength,
            seconds=seconds,
            **extras,
        )
        at = AT + dt.timedelta(minutes=serial, microseconds=micro)
        Judgment.objects.filter(pk=judgment.pk).update(created_at=at, updated_at=at + dt.timedelta(seconds=9))
    return project


@pytest.fixture(
    params=[
        pytest.param("django", marks=pytest.mark.django_db),
        pytest.param("adbc", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def reader(request, tmp_path, monkeypatch):
    """The project, and the name of the reader the statements go through."""
    if request.param == "django":
        return _project(), "_DjangoConnection"
    project = _project()
    if connection.vendor == "postgresql":
        monkeypatch.setattr(export_readers, "STREAM_BATCH_BYTES", 1)  # a record batch per row
        return project, "_OwnConnections"
    path = tmp_path / "db.sqlite3"
    connection.ensure_connection()
    with closing(sqlite3.connect(path)) as copy:
        connection.connection.backup(copy)
    monkeypatch.setattr(export_readers, "_sqlite_uri", path.as_uri)
    monkeypatch.setattr(export_readers, "STREAM_BATCH_ROWS", 1)  # a record batch per row
    return project, "_SQLiteProcess"


def read(name: str, project, reader: str, *, include_gold: bool = True) -> list[dict]:
    found = {name: db_export.statement(name, project_id=project.pk, include_gold=include_gold)}
    opened = export_readers.opened(found, {name: lambda batch: batch})
    assert type(opened).__name__ == reader
    with opened as readers:
        batches = list(readers[name])
    return pa.Table.from_batches(batches, db_export.SCHEMAS[name]).to_pylist()


def judgments(project) -> list[Judgment]:
    found = Judgment.objects.filter(project=project).select_related("assignment")
    return list(found.order_by("item_id", "created_at", "id"))


def test_judgments_are_the_orms_in_item_and_submit_order(reader):
    project, name = reader

    rows = read("judgments", project, name)

    assert [{**row, "ranking": json.loads(row["ranking"])} for row in rows] == [
        {"item_pk": j.item_id, "ranking": j.ranking, "strength": j.strength} for j in judgments(project)
    ]


def test_raw_judgments_are_the_orms_with_ids_and_times_as_python_writes_them(reader):
    project, name = reader

    rows = read("raw_judgments", project, name)

    decoded = [{**row, **{key: json.loads(row[key]) for key in ("ranking", "criteria", "shown_order")}} for row in rows]
    assert decoded == [
        {
            "item_pk": j.item_id,
            "ranking": j.ranking,
            "strength": j.strength,
            "id": str(j.pk),
            "annotator_id": j.annotator_id,
            "both_bad": j.both_bad,
            "rationale": j.rationale,
            "criteria": j.criteria,
            "seconds": j.seconds,
            "late": j.late,
            "created_at": j.created_at.isoformat(),
            "updated_at": j.updated_at.isoformat(),
            "shown_order": j.assignment.shown_order,
        }
        for j in judgments(project)
    ]
    assert "\n" not in "".join(row["criteria"] + row["shown_order"] + row["ranking"] for row in rows)
    assert {row["created_at"][19:] for row in rows} == {"+00:00", ".123456+00:00", ".500000+00:00", ".000001+00:00"}


@pytest.mark.parametrize("include_gold", [True, False])
def test_items_are_the_judged_items_with_the_prompt_as_one_json_line(reader, include_gold):
    project, name = reader

    rows = read("items", project, name, include_gold=include_gold)

    judged = {j.item for j in judgments(project) if include_gold or not j.item.is_gold}
    assert [(row["item_pk"], row["external_id"]) for row in rows] == sorted((i.pk, i.external_id) for i in judged)
    for row, item in zip(rows, sorted(judged, key=lambda item: item.pk), strict=True):
        assert row["prompt"].endswith("\n") and "\n" not in row["prompt"][:-1] and "\r" not in row["prompt"]
        assert json.loads(row["prompt"]) == {"p": item.prompt}


def test_responses_are_every_response_of_the_judged_items_gold_included(reader):
    project, name = reader

    rows = read("responses", project, name)

    judged = {j.item_id for j in judgments(project)}
    expected = Response.objects.filter(item_id__in=judged).values_list("pk", "item_id", "model", "content")
    assert [row["item_pk"] for row in rows] == sorted(row["item_pk"] for row in rows)
    assert sorted(tuple(row.values()) for row in rows) == sorted(expected)
    assert "" in {row["model"] for row in rows}


def test_sqlite_times_written_with_fewer_digits_read_as_django_reads_them(db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite keeps times as text")
    project = _project()
    with connection.cursor() as cursor:  # as another program might write them: hundredths, milliseconds
        cursor.execute(
            "UPDATE labeling_judgment SET created_at = %s, updated_at = %s",
            ["2026-03-04 05:06:07.25", "2026-03-04 05:06:07.000"],
        )

    rows = read("raw_judgments", project, "_DjangoConnection")

    expected = judgments(project)[0]
    assert (
        {(row["created_at"], row["updated_at"]) for row in rows}
        == {(expected.created_at.isoformat(), expected.updated_at.isoformat())}
        == {("2026-03-04T05:06:07.250000+00:00", "2026-03-04T05:06:07+00:00")}
    )
