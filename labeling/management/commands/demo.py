from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from labeling.management.commands._base import ServiceCommand
from labeling.models import Membership, Project
from labeling.services.importing import items_import
from labeling.services.members import membership_add
from labeling.services.projects import project_create

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
SLUG = "demo"
# Demo accounts for a local trial on 127.0.0.1; never use them on a server.
ACCOUNTS = (
    ("manager", "demo-manager-pass", Membership.Role.MANAGER),
    ("alice", "demo-alice-pass", Membership.Role.ANNOTATOR),
    ("bob", "demo-bob-pass", Membership.Role.ANNOTATOR),
)
# The demo manager may also create projects (New project, POST /api/projects).
CREATORS = ("manager",)


def local_url(address: str) -> str:
    """The URL a browser opens for runserver's ADDRESS (`[host:]port`)."""
    return f"http://{address if ':' in address else f'127.0.0.1:{address}'}/"


class Command(ServiceCommand):
    help = "Load the demo project (32 prompt/response pairs) and print the demo accounts. Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument(
            "--address",
            default="127.0.0.1:8000",
            help="The [host:]port the server listens on (runserver's argument), printed as the login address.",
        )

    def run(self, *args, **options):
        project = Project.objects.filter(slug=SLUG).first()
        if project is None:
            project = project_create(
                slug=SLUG,
                title="Demo: which answer is better?",
                overlap=2,
                guidelines=(DEMO_DIR / "guidelines.md").read_text(encoding="utf-8"),
                skip_reasons=["I can't judge this topic", "The prompt is unclear", "Offensive content"],
                criteria=[{"key": "unsafe", "label": "Contains unsafe content", "type": "flag", "per_response": True}],
            )
            self.stdout.write(f"Created project '{SLUG}'.")
        report = items_import(project=project, path=DEMO_DIR / "demo_items.jsonl")
        self.stdout.write(f"Demo items: {report.imported} new, {report.skipped_existing} already there.")
        User = get_user_model()
        for username, password, role in ACCOUNTS:
            # Keep a password someone changed: only new accounts get the demo one.
            fresh = not User.objects.filter(username=username).exists()
            membership_add(
                project=project, username=username, role=role, create=True, password=password if fresh else None
            )
        can_create = Permission.objects.get(content_type__app_label="labeling", codename="add_project")
        for user in User.objects.filter(username__in=CREATORS):
            user.user_permissions.add(can_create)
        self.stdout.write(f"\nDemo accounts (log in at {local_url(options['address'])}):")
        for username, password, role in ACCOUNTS:
            extra = ", may create projects" if username in CREATORS else ""
            self.stdout.write(f"  {username:8} password: {password:20} ({role}{extra})")
