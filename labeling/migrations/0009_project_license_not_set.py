"""A new project's export license is empty ("not set") until a manager chooses one.

Only the field's default changes, and Django keeps defaults in Python, not in the
table: the change is made to the migration state alone, so SQLite does not rebuild
the project table for it. Existing projects keep the license they have, so their
exports stay as they were.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0008_redundant_fk_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="project",
                    name="license",
                    field=models.CharField(
                        blank=True,
                        default="",
                        help_text="License of the exported data, e.g. cc-by-4.0.",
                        max_length=64,
                    ),
                ),
            ],
        ),
    ]
