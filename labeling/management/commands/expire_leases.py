from labeling.management.commands._base import ServiceCommand
from labeling.services.assignment import leases_expire


class Command(ServiceCommand):
    help = "Release expired leases (claims already do this; run periodically for tidy numbers)."

    def run(self, *args, **options):
        total = 0
        while released := leases_expire():
            total += released
        self.stdout.write(f"Released {total} expired leases.")
