import json

from labeling.management.commands._base import ServiceCommand
from labeling.services.metrics import project_stats
from labeling.services.projects import project_get


class Command(ServiceCommand):
    help = "Progress, agreement, annotators and leaderboard of a project."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("--json", action="store_true")

    def run(self, *args, **options):
        stats = project_stats(project=project_get(slug=options["project"]))
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2))
            return
        self.stdout.write(
            f"items: {stats['items']} ({stats['items_complete']} complete), judgments: {stats['judgments']}"
        )
        agreement = stats["agreement"]
        self.stdout.write(f"agreement: pairwise {agreement['pairwise']}, with reference {agreement['with_reference']}")
        for row in stats["annotators"]:
            self.stdout.write(
                f"  {row['username']}: {row['judgments']} judgments, median {row['median_seconds']} s, "
                f"agreement {row['agreement']}, ties {row['tie_rate']}, left {row['left_share']} {row['flags']}"
            )
        for row in stats["leaderboard"]:
            self.stdout.write(f"  {row['model']}: {row['wins']} wins, {row['losses']} losses, {row['ties']} ties")
