from pathlib import Path

from tqdm import tqdm

from labeling.management.commands._base import ServiceCommand
from labeling.services.importing import ImportRejected, items_import
from labeling.services.parsing.readers import FORMATS, count_rows
from labeling.services.projects import project_get


class Command(ServiceCommand):
    help = "Import items (a prompt and its responses per row) from a file or a dataset folder."
    # The system checks import the whole URL conf (API, exports, metrics, SciPy), which an
    # import never uses: 1.7 s of CPU and 110 MB on every run. `manage.py check` still runs them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", choices=FORMATS, default="auto")
        parser.add_argument("--dry-run", action="store_true", help="Validate every row; write nothing.")
        parser.add_argument("--skip-invalid", action="store_true", help="Import the valid rows, report the others.")

    def run(self, *args, **options):
        project = project_get(slug=options["project"])
        total = count_rows(options["path"], options["format"]) if options["path"].is_file() else None
        bar = tqdm(total=total, unit="rows", desc="reading", file=self.stderr._out, disable=options["verbosity"] < 1)

        def progress(rows: int) -> None:
            bar.update(rows - bar.n)

        try:
            report = items_import(
                project=project,
                path=options["path"],
                fmt=options["format"],
                dry_run=options["dry_run"],
                skip_invalid=options["skip_invalid"],
                progress=progress,
            )
        except ImportRejected as error:
            bar.close()
            self.stderr.write(f"rows read: {error.report.rows}")
            raise
        bar.close()
        for number, reason in report.rejected:
            self.stderr.write(f"rejected row {number}: {reason}")
        verb = "would import" if report.dry_run else "imported"
        self.stdout.write(
            f"{verb} {report.imported} items ({report.shape} shape) from {report.rows} rows; "
            f"rejected {report.rejected_count}; skipped {report.skipped_existing} already in the project "
            f"and {report.skipped_duplicate} repeated in the file."
        )
