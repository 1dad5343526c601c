from pathlib import Path

from labeling.management.commands._base import ServiceCommand
from labeling.services.exporting import CONFIGS, FORMATS, ExportOptions, preferences_export
from labeling.services.exporting.aggregate import POLICIES
from labeling.services.exporting.styles import STYLES
from labeling.services.projects import project_get


class Command(ServiceCommand):
    help = "Export preferences as a Hugging Face DatasetDict (save_to_disk, Hub-layout Parquet or JSONL)."
    # The system checks import the whole URL conf (views, API), which an export never uses;
    # `manage.py check` still runs them. As for import_items.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--out", type=Path, required=True, help="A new or empty folder.")
        parser.add_argument("--config", choices=CONFIGS, default="default")
        parser.add_argument("--style", choices=STYLES, default="conversational")
        parser.add_argument("--aggregate", choices=POLICIES, default="majority")
        parser.add_argument("--margin", action="store_true", help="Add a float `margin` column for RewardTrainer.")
        parser.add_argument("--min-agreement", type=float, default=None)
        parser.add_argument("--test-size", type=float, default=0.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--format", choices=FORMATS, default="hf")
        parser.add_argument("--include-gold", action="store_true", help="Keep gold items in the export.")

    def run(self, *args, **options):
        project = project_get(slug=options["project"])
        report = preferences_export(
            project=project,
            out_dir=options["out"],
            options=ExportOptions(
                config=options["config"],
                style=options["style"],
                aggregate=options["aggregate"],
                margin=options["margin"],
                min_agreement=options["min_agreement"],
                test_size=options["test_size"],
                seed=options["seed"],
                fmt=options["format"],
                include_gold=options["include_gold"],
            ),
        )
        splits = ", ".join(f"{split} {rows}" for split, rows in report.rows.items())
        counts = report.counts
        self.stdout.write(
            f"Exported to {report.out}: {splits} rows from {report.items} items and {report.judgments} judgments "
            f"(left out: {counts.tied} tied pairs, {counts.split} split votes, "
            f"{counts.below_agreement} below --min-agreement)."
        )
