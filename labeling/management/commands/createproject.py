import json
from pathlib import Path

from labeling.management.commands._base import ServiceCommand
from labeling.models import Project
from labeling.services.errors import InvalidInput
from labeling.services.projects import project_create


class Command(ServiceCommand):
    help = "Create a labeling project."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--title", default="")
        parser.add_argument("--mode", choices=Project.Mode.values, default=Project.Mode.PAIRWISE)
        parser.add_argument("--overlap", type=int, default=1, help="Judgments wanted per item (default 1).")
        parser.add_argument("--guidelines", type=Path, help="A markdown file with the annotation guidelines.")
        parser.add_argument("--lease-seconds", type=int, help="How long an item stays leased to one annotator.")
        parser.add_argument("--order", choices=Project.Order.values, default=Project.Order.DEPTH_FIRST)
        parser.add_argument(
            "--license", default="", help="License of the exported data, e.g. cc-by-4.0 (default: not set)."
        )
        parser.add_argument("--min-votes", type=int, help="Adaptive overlap: judgments per item at first.")
        parser.add_argument("--max-votes", type=int, help="Adaptive overlap: most judgments while votes disagree.")
        parser.add_argument("--gold-rate", type=float, default=0.0, help="Share of claims that serve gold items.")
        parser.add_argument("--criteria", type=Path, help="A JSON file: [{key, label, type: likert|flag|text, ...}].")
        parser.add_argument("--skip-reason", action="append", default=[], help="A reason annotators may skip for.")
        parser.add_argument("--rationale-required", action="store_true", help="Annotators must say why.")
        parser.add_argument("--show-model-names", action="store_true", help="Show annotators which model wrote what.")

    def run(self, *args, **options):
        guidelines = ""
        if options["guidelines"]:
            try:
                guidelines = options["guidelines"].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise InvalidInput(f"Cannot read guidelines file '{options['guidelines']}': {error}") from None
        criteria = None
        if options["criteria"]:
            try:
                criteria = json.loads(options["criteria"].read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise InvalidInput(f"Cannot read criteria file '{options['criteria']}': {error}") from None
        project = project_create(
            slug=options["slug"],
            title=options["title"],
            mode=options["mode"],
            overlap=options["overlap"],
            guidelines=guidelines,
            lease_seconds=options["lease_seconds"],
            order=options["order"],
            license=options["license"],
            min_votes=options["min_votes"],
            max_votes=options["max_votes"],
            gold_rate=options["gold_rate"],
            criteria=criteria,
            skip_reasons=options["skip_reason"],
            rationale_required=options["rationale_required"],
            show_model_names=options["show_model_names"],
        )
        votes = f"{project.min_votes}..{project.max_votes} votes" if project.adaptive else f"overlap {project.overlap}"
        self.stdout.write(f"Created project '{project.slug}' ({project.mode}, {votes}).")
