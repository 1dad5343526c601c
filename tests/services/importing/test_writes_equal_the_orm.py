"""The import's plain-SQL write path stores what the ORM would, and stays all or nothing."""

import contextlib
import datetime
import gc
import json

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling.db import imports
from labeling.models import Item, Response
from labeling.services.errors import InvalidInput
from labeling.services.importing import ImportRejected, items_import
from labeling.services.parsing import batches
from labeling.services.parsing.readers import BATCH_ROWS
from labeling.services.parsing.shapes import detect_shape, normalize

NATIVE = [
    {
        "id": "n-1",
        "prompt": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Größte Stadt? 東京?"}],
        "responses": [
            {"model": "big-7b", "content": "Tokyo — 東京.", "metadata": {"temperature": 0.7, "tags": ["a", "é"]}},
            {"model": "small-1b", "content": "Osaka.", "metadata": {}},
            "Kyoto.",
        ],
        "metadata": {"topic": "geography", "nested": {"x": [1, 2.5, None, True]}},
        "gold_answer": [[0], [1, 2]],
    },
    {"id": 7, "prompt": "Name a prime.", "responses": ["7", "8"]},
    {"prompt": "No id: a content hash.", "responses": ["yes", "no"], "metadata": {}},
]
TRL = [
    {"prompt": "Best colour?", "chosen": "Blue.", "rejected": "Beige.", "gold": True},
    {"prompt": [{"role": "user", "content": "Hi?"}], "chosen": "Hello!", "rejected": "Go away."},
]


def saved_through_the_orm(project, rows):
    """What the ORM stores for `rows`: one `save()` per item and per response."""
    for row in rows:
        for entry in normalize(row, detect_shape(set(row))):
            item = Item(
                project=project,
                external_id=entry.external_id,
                prompt=entry.prompt,
                metadata=entry.metadata,
                reference=entry.reference,
                is_gold=entry.gold_answer is not None,
                gold_answer=entry.gold_answer,
                target=project.initial_target,
            )
            item.save()
            for position, response in enumerate(entry.responses):
                Response(
                    item=item, position=position, model=response.model, content=response.content,
                    metadata=response.metadata,
                ).save()  # fmt: skip


def raw_rows(table: str, where: str, params) -> list[dict]:
    """Every column as the database holds it (JSON as stored text on SQLite)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY id", params)  # noqa: S608 - test tables
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def stored(project) -> tuple[list[dict], list[dict]]:
    items = raw_rows("labeling_item", "project_id = %s", [project.pk])
    responses = raw_rows(
        "labeling_response", "item_id IN (SELECT id FROM labeling_item WHERE project_id = %s)", [project.pk]
    )
    return items, responses


@pytest.mark.parametrize("rows_per_statement", [1000, 2], ids=["one-statement-per-row", "multi-row-statements"])
def test_rows_written_by_the_import_equal_what_the_orm_saves(
    project, other_project, write_jsonl, monkeypatch, rows_per_statement
):
    """On SQLite whole chunks of rows go in one INSERT each and the rest one row per statement:
    with 2 rows a statement, these files take both paths."""
    monkeypatch.setattr(imports, "SQLITE_ROWS_PER_STATEMENT", rows_per_statement)
    other_project.overlap = project.overlap
    other_project.save()
    before = timezone.now()
    items_import(project=project, path=write_jsonl(NATIVE, "native.jsonl"))
    items_import(project=project, path=write_jsonl(TRL, "trl.jsonl"))
    after = timezone.now()
    saved_through_the_orm(other_project, NATIVE + TRL)

    imported_items, imported_responses = stored(project)
    orm_items, orm_responses = stored(other_project)

    skip = {"id", "project_id", "created_at"}
    assert [{k: v for k, v in row.items() if k not in skip} for row in imported_items] == [
        {k: v for k, v in row.items() if k not in skip} for row in orm_items
    ]
    assert len(imported_items) == 5
    ids = [row["id"] for row in imported_items]
    assert len(set(ids)) == len(ids)
    created = Item.objects.filter(project=project).values_list("created_at", flat=True)
    assert all(before <= moment <= after for moment in created)

    # Responses: same columns, linked to their own item, positions in row order.
    assert [{k: v for k, v in row.items() if k not in {"id", "item_id"}} for row in imported_responses] == [
        {k: v for k, v in row.items() if k not in {"id", "item_id"}} for row in orm_responses
    ]
    response_ids = [row["id"] for row in imported_responses]
    assert len(set(response_ids)) == len(response_ids)
    by_item = {
        item.external_id: [(r.position, r.content) for r in item.responses.all()]
        for item in Item.objects.filter(project=project)
    }
    assert by_item["n-1"] == [(0, "Tokyo — 東京."), (1, "Osaka."), (2, "Kyoto.")]
    assert by_item["7"] == [(0, "7"), (1, "8")]

    # And read back through the models, the values are the ones in the file.
    first = Item.objects.get(project=project, external_id="n-1")
    assert first.metadata == {"topic": "geography", "nested": {"x": [1, 2.5, None, True]}}
    assert (first.is_gold, first.gold_answer, first.reference) == (True, [[0], [1, 2]], None)
    assert first.responses.get(position=0).metadata == {"temperature": 0.7, "tags": ["a", "é"]}
    assert Item.objects.filter(project=project, reference__isnull=True).count() == 3  # SQL NULL, not JSON null


@pytest.mark.django_db(transaction=True)
def test_a_bad_row_after_batches_were_written_leaves_nothing(project, write_jsonl):
    rows = [{"id": f"r-{n}", "prompt": f"Q{n}?", "responses": [f"a{n}", f"b{n}"]} for n in range(2 * BATCH_ROWS + 5)]
    rows.append({"id": "bad", "prompt": "Q?", "responses": ["only one"]})

    with pytest.raises(ImportRejected, match=f"row {2 * BATCH_ROWS + 6}: an item needs 2 to 8 responses"):
        items_import(project=project, path=write_jsonl(rows))

    assert Item.objects.count() == 0
    assert Response.objects.count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite takes ids after the largest one")
@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_a_later_batch_leaves_nothing(project, write_jsonl):
    """COPY failing in the second batch (an id of the sequence's range already taken by
    hand) rolls the first batch back too."""
    rows = [{"id": f"r-{n}", "prompt": f"Q{n}?", "responses": [f"a{n}", f"b{n}"]} for n in range(2 * BATCH_ROWS + 5)]
    path = write_jsonl(rows)
    taken = Item.objects.create(project=project, external_id="taken", prompt=[{"role": "user", "content": "Q?"}])
    Item.objects.filter(pk=taken.pk).update(id=taken.pk + BATCH_ROWS + 1)

    with pytest.raises(IntegrityError, match="labeling_item_pkey"):
        items_import(project=project, path=path)

    assert list(Item.objects.values_list("external_id", flat=True)) == ["taken"]
    assert Response.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_ids_keep_increasing_after_an_import(project, write_jsonl):
    gone = Item.objects.create(project=project, external_id="gone", prompt=[{"role": "user", "content": "Q?"}])
    gone_id = gone.pk
    gone.delete()  # an id handed out once is never handed out again, as with the ORM

    items_import(project=project, path=write_jsonl(NATIVE))
    imported = list(Item.objects.order_by("id").values_list("id", flat=True))
    assert imported[0] > gone_id

    later = Item.objects.create(project=project, external_id="later", prompt=[{"role": "user", "content": "Q?"}])
    response = Response.objects.create(item=later, position=0, content="A.")
    assert later.pk > max(imported)
    assert response.pk > max(Response.objects.exclude(pk=response.pk).values_list("id", flat=True))

    items_import(project=project, path=write_jsonl(TRL, "trl.jsonl"))
    assert min(Item.objects.filter(reference__isnull=False).values_list("id", flat=True)) > later.pk
    assert Item.objects.filter(project=project).count() == len(NATIVE) + len(TRL) + 1


def test_created_at_is_the_import_time(project, write_jsonl):
    items_import(project=project, path=write_jsonl(NATIVE))
    moment = Item.objects.filter(project=project).values_list("created_at", flat=True).first()
    assert abs(timezone.now() - moment) < datetime.timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_a_file_that_breaks_after_batches_were_written_leaves_nothing(project, tmp_path):
    """The reader fails while a batch may still be on its way to the database."""
    path = tmp_path / "items.csv"
    lines = ["id,prompt,response_a,response_b"] + [f"r-{n},Q{n}?,a{n},b{n}" for n in range(3 * BATCH_ROWS)]
    path.write_text("\n".join([*lines, "bad,row,with,four,too,many"]) + "\n")

    with pytest.raises(InvalidInput, match="is not a readable CSV file"):
        items_import(project=project, path=path)

    assert Item.objects.count() == 0
    assert Response.objects.count() == 0


def test_a_progress_callback_may_use_the_database(project, write_jsonl):
    rows = [{"id": f"r-{n}", "prompt": f"Q{n}?", "responses": [f"a{n}", f"b{n}"]} for n in range(3 * BATCH_ROWS + 5)]
    seen = []

    def progress(done: int) -> None:
        seen.append((done, Item.objects.count()))

    items_import(project=project, path=write_jsonl(rows), progress=progress)

    assert [done for done, _ in seen] == [BATCH_ROWS, 2 * BATCH_ROWS, 3 * BATCH_ROWS, 3 * BATCH_ROWS + 5]
    assert [stored for _, stored in seen][:3] == [0, BATCH_ROWS, 2 * BATCH_ROWS]
    assert Item.objects.count() == 3 * BATCH_ROWS + 5


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's page cache")
@pytest.mark.parametrize("valid", [True, False])
def test_the_larger_sqlite_page_cache_lasts_only_for_the_import(project, write_jsonl, valid):
    def cache_size() -> int:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size")
            return cursor.fetchone()[0]

    seen = []
    before = cache_size()
    rows = [{"id": f"r-{n}", "prompt": f"Q{n}?", "responses": [f"a{n}", f"b{n}"]} for n in range(BATCH_ROWS + 5)]
    if not valid:
        rows.append({"prompt": "Q?", "responses": ["only one"]})
    with contextlib.nullcontext() if valid else pytest.raises(ImportRejected):
        items_import(project=project, path=write_jsonl(rows), progress=lambda done: seen.append(cache_size()))

    assert seen[0] == -imports.SQLITE_CACHE_KIB  # during the import
    assert cache_size() == before


@pytest.mark.parametrize(
    "prompt",
    [
        [{"role": "user", "content": 'Say "hi"\\n\ttab \\ é 東京 \u2028 \x7f \U0001f600 \ud800'}],
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q?"}],
        [{"role": "assistant", "content": "A."}],
        [{"content": "Q?", "role": "user"}],
    ],
)
def test_a_prompt_is_stored_as_json_dumps_writes_it(prompt):
    assert batches._prompt_json(prompt) == json.dumps(prompt)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="deferred foreign keys")
def test_foreign_keys_are_deferred_again_after_the_import(project, write_jsonl):
    """The import checks its rows' foreign keys as it loads them; the rest of an outer
    transaction gets them checked at commit again, as Django declares them."""
    items_import(project=project, path=write_jsonl(NATIVE))

    with transaction.atomic():  # a savepoint in the test's transaction, which is rolled back
        Response.objects.create(item_id=10**9, position=0, content="A.")  # checked at commit only
        transaction.set_rollback(True)


@pytest.mark.parametrize("valid", [True, False])
def test_the_garbage_collector_gets_every_object_back(project, write_jsonl, valid):
    """The import freezes the objects older than it (so the collector does not walk them
    for every batch) and hands them back afterwards, whether it succeeded or not."""
    frozen = gc.get_freeze_count()
    seen = []
    rows = [{"id": f"r-{n}", "prompt": f"Q{n}?", "responses": [f"a{n}", f"b{n}"]} for n in range(BATCH_ROWS + 5)]
    if not valid:
        rows.append({"prompt": "Q?", "responses": ["only one"]})
    with contextlib.nullcontext() if valid else pytest.raises(ImportRejected):
        items_import(project=project, path=write_jsonl(rows), progress=lambda done: seen.append(gc.get_freeze_count()))

    assert seen[0] > frozen  # during the import
    assert gc.get_freeze_count() == frozen
