"""Drop the single-column indexes of `Item.project` and `Response.item`.

Each is the leading column of a unique constraint's index (`item_external_id_unique`:
project, external_id; `response_position_unique`: item, position), which serves the
same lookups; every imported item and response paid for maintaining both. The foreign
keys stay as they are: only the indexes go (by the names Django gave them in 0001),
so neither table is rebuilt (SQLite) nor are its constraints checked again (PostgreSQL).
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = (
    ("labeling_item_project_id_79d60f44", "labeling_item", "project_id"),
    ("labeling_response_item_id_8d8f78d7", "labeling_response", "item_id"),
)


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0007_stats_snapshot"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "{table}" ("{column}")',
                )
                for name, table, column in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="item",
                    name="project",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="items",
                        to="labeling.project",
                    ),
                ),
                migrations.AlterField(
                    model_name="response",
                    name="item",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="responses",
                        to="labeling.item",
                    ),
                ),
            ],
        ),
    ]
