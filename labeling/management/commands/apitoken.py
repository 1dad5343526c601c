from labeling.management.commands._base import ServiceCommand
from labeling.services.tokens import token_create


class Command(ServiceCommand):
    help = "Print a new API token for a user (shown once, stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to recognise the token by.")

    def run(self, *args, **options):
        _, token = token_create(username=options["username"], name=options["name"])
        self.stdout.write(token)
