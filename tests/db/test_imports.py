"""The import's statements (labeling/db/imports.py) and its row layouts (import_rows.py), on
whichever database the run uses."""

import contextlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from labeling.db import imports
from labeling.db.import_rows import ITEM, RESPONSE
from labeling.models import Item, Response
from tests.factories import ItemFactory

POSTGRESQL = connection.vendor == "postgresql"


def _prompt(text: str) -> str:
    return json.dumps([{"role": "user", "content": text}])


def flat_items(*rows: dict) -> list:
    """Items laid out as ITEM lays them out, from rows keyed by column (index first)."""
    values = []
    for index, row in enumerate(rows):
        values += (index, *(row[column] for column in ITEM.carried))
    return values


def flat_responses(*rows: dict) -> list:
    values = []
    for row in rows:
        values += (row["item"], *(row[column] for column in RESPONSE.carried))
    return values


def item_row(external_id: str, *, gold: str | None = None, reference: str | None = None) -> dict:
    return {
        "external_id": external_id,
        "prompt": _prompt(f"Q {external_id}?"),
        "metadata": json.dumps({"source": external_id}),
        "reference": reference,
        "is_gold": gold is not None,
        "gold_answer": gold,
    }


def response_row(item: int, position: int, content: str) -> dict:
    return {"item": item, "position": position, "model": f"m{position}", "content": content, "metadata": "{}"}


# -- layouts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "model"), [(ITEM, Item), (RESPONSE, Response)], ids=["item", "response"])
def test_every_column_a_layout_names_is_a_column_of_its_table_once(layout, model):
    columns = {field.column for field in model._meta.concrete_fields}
    assert set(layout.columns) <= columns
    assert len(set(layout.columns)) == len(layout.columns)
    assert layout.width == 1 + len(layout.carried)
    assert [layout.offset(column) for column in layout.carried] == list(range(1, layout.width))


def test_the_layouts_and_the_parsing_process_need_no_django_set_up():
    """The parsing process (forkserver) imports them without Django's settings or app registry."""
    code = (
        "import sys, labeling.db.import_rows, labeling.services.parsing.process; "
        "assert 'labeling.models' not in sys.modules and 'django.db.models' not in sys.modules, sorted(sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": "/usr/bin:/bin"}, cwd=root)


# -- import_lock ---------------------------------------------------------------------------


@pytest.mark.skipif(not POSTGRESQL, reason="PostgreSQL's advisory lock")
def test_the_import_lock_is_the_projects_until_the_transaction_ends(project, other_project):
    key = "SELECT pg_try_advisory_xact_lock(%s::regclass::oid::integer, %s)"
    other = connections.create_connection("default")
    try:
        with transaction.atomic():
            imports.import_lock(project_id=project.pk)
            with other.cursor() as cursor:
                cursor.execute(key, ["labeling_item", project.pk])
                assert cursor.fetchone()[0] is False  # another import of this project waits
                cursor.execute(key, ["labeling_item", other_project.pk])
                assert cursor.fetchone()[0] is True  # another project's does not
    finally:
        other.close()


@pytest.mark.skipif(POSTGRESQL, reason="SQLite's write lock")
def test_on_sqlite_the_import_lock_is_the_transactions_write_lock(project, django_assert_num_queries):
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    with transaction.atomic(), django_assert_num_queries(0):
        imports.import_lock(project_id=project.pk)


# -- bulk_load ---------------------------------------------------------------------------


@pytest.mark.skipif(not POSTGRESQL, reason="deferred foreign keys")
def test_bulk_load_checks_foreign_keys_at_once_then_defers_them_again(db):
    with transaction.atomic():
        with imports.bulk_load(Item, Response), pytest.raises(IntegrityError), transaction.atomic():
            Response.objects.create(item_id=10**9, position=0, content="A.")  # checked at once
        with transaction.atomic():
            Response.objects.create(item_id=10**9, position=0, content="A.")  # checked at commit only
            transaction.set_rollback(True)


@pytest.mark.skipif(POSTGRESQL, reason="SQLite's page cache")
@pytest.mark.parametrize("fails", [False, True])
def test_bulk_load_enlarges_sqlite_page_cache_for_the_block_only(db, fails):
    def cache_size() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size")
            return cursor.fetchone()[0]

    before = cache_size()
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext(), imports.bulk_load(Item, Response):
        assert cache_size() == -imports.SQLITE_CACHE_KIB
        if fails:
            raise RuntimeError("the import failed")
    assert cache_size() == before


# -- existing_external_ids ---------------------------------------------------------------


def test_existing_external_ids_are_the_projects_own(project, other_project, django_assert_num_queries):
    ItemFactory(project=project, external_id="a")
    ItemFactory(project=project, external_id="b")
    ItemFactory(project=other_project, external_id="c")

    with django_assert_num_queries(1):
        found = imports.existing_external_ids(project_id=project.pk, external_ids=["a", "c", "x", "b"])
    assert found == {"a", "b"}
    with django_assert_num_queries(0):
        assert imports.existing_external_ids(project_id=project.pk, external_ids=[]) == set()


# -- batch_insert --------------------------------------------------------------------------


@pytest.mark.parametrize("rows_per_statement", [1000, 2], ids=["one-statement", "several-statements"])
def test_batch_insert_stores_the_rows_as_laid_out_with_ids_linked_and_defaults(
    project, monkeypatch, rows_per_statement
):
    monkeypatch.setattr(imports, "SQLITE_ROWS_PER_STATEMENT", rows_per_statement)
    earlier = ItemFactory(project=project, external_id="earlier")
    items = flat_items(item_row("a", gold="[[0], [1]]"), item_row("b", reference="[[1], [0]]"), item_row("c"))
    responses = flat_responses(
        *(response_row(index, position, f"{index}.{position}") for index in range(3) for position in range(2))
    )
    before = timezone.now()

    with transaction.atomic():
        insert = imports.batch_insert(
            items=items, responses=responses, item_shared={"project_id": project.pk, "target": 3}
        )
        with ThreadPoolExecutor(max_workers=1) as pool:  # as the import runs it: in a thread of its own
            pool.submit(insert).result()

    stored = list(Item.objects.filter(project=project).exclude(pk=earlier.pk).order_by("id"))
    assert [item.external_id for item in stored] == ["a", "b", "c"]
    assert all(item.pk > earlier.pk for item in stored)
    assert [(item.is_gold, item.gold_answer, item.reference) for item in stored] == [
        (True, [[0], [1]], None),
        (False, None, [[1], [0]]),
        (False, None, None),
    ]
    assert stored[0].prompt == [{"role": "user", "content": "Q a?"}]
    assert stored[0].metadata == {"source": "a"}
    assert {item.target for item in stored} == {3}
    assert {(item.filled, item.is_complete, item.withdrawn_at) for item in stored} == {(0, False, None)}
    assert all(before <= item.created_at <= timezone.now() for item in stored)
    for index, item in enumerate(stored):
        assert [(r.position, r.model, r.content, r.metadata) for r in item.responses.order_by("position")] == [
            (0, "m0", f"{index}.0", {}),
            (1, "m1", f"{index}.1", {}),
        ]

    later = ItemFactory(project=project, external_id="later")  # the ORM's next id is past the import's
    assert later.pk > stored[-1].pk


def test_batch_insert_refuses_shared_values_the_layout_does_not_name(project):
    with pytest.raises(ValueError, match="item_shared must name"):
        imports.batch_insert(items=[], responses=[], item_shared={"project_id": project.pk})


def test_batch_insert_never_takes_an_id_given_out_before(project):
    """Not even one whose row was deleted (PostgreSQL: the sequence; SQLite: AUTOINCREMENT's record)."""
    gone = ItemFactory(project=project, external_id="gone")
    gone_id = gone.pk
    gone.delete()
    with transaction.atomic():
        imports.batch_insert(
            items=flat_items(item_row("a")), responses=[], item_shared={"project_id": project.pk, "target": 1}
        )()
    assert Item.objects.get(external_id="a").pk > gone_id
