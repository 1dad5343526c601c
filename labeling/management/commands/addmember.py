from labeling.management.commands._base import ServiceCommand
from labeling.models import Membership
from labeling.services.members import membership_add
from labeling.services.projects import project_get


class Command(ServiceCommand):
    help = "Add a user to a project as annotator or manager."

    def add_arguments(self, parser):
        parser.add_argument("project")
        parser.add_argument("username")
        parser.add_argument("--role", choices=Membership.Role.values, default=Membership.Role.ANNOTATOR)
        parser.add_argument("--create", action="store_true", help="Create the user if it does not exist.")
        parser.add_argument(
            "--password",
            help="The new user's password (with --create); an existing account is never changed (use changepassword).",
        )

    def run(self, *args, **options):
        project = project_get(slug=options["project"])
        membership = membership_add(
            project=project,
            username=options["username"],
            role=options["role"],
            create=options["create"],
            password=options["password"],
        )
        self.stdout.write(f"{membership.user.username} is now {membership.role} of '{project.slug}'.")
