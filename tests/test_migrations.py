"""Migrations that change the schema by hand do on each database what their state says."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def indexes_on(table: str) -> dict[tuple[str, ...], dict]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return {tuple(info["columns"]): info for info in constraints.values() if info["index"] or info["unique"]}


def migrate_to(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("labeling", target)])


@pytest.mark.django_db(transaction=True)
def test_the_redundant_foreign_key_indexes_are_dropped_and_come_back_on_reverse():
    assert ("project_id",) not in indexes_on("labeling_item")
    assert ("item_id",) not in indexes_on("labeling_response")
    # the unique constraints whose indexes serve the same lookups are there
    assert indexes_on("labeling_item")[("project_id", "external_id")]["unique"]
    assert indexes_on("labeling_response")[("item_id", "position")]["unique"]

    try:
        migrate_to("0007_stats_snapshot")
        assert ("project_id",) in indexes_on("labeling_item")
        assert ("item_id",) in indexes_on("labeling_response")
    finally:
        migrate_to("0008_redundant_fk_indexes")
    assert ("project_id",) not in indexes_on("labeling_item")
    assert ("item_id",) not in indexes_on("labeling_response")


@pytest.mark.django_db
def test_the_models_match_the_migrations():
    call_command("makemigrations", "labeling", "--check", "--dry-run", verbosity=0)
