"""Shared plumbing for commands: domain errors become a clear message and exit code 1."""

from django.core.management.base import BaseCommand, CommandError

from labeling.services.errors import DomainError


class ServiceCommand(BaseCommand):
    """A command that calls services; `run` does the work, DomainError ends it cleanly."""

    def handle(self, *args, **options):
        try:
            return self.run(*args, **options)
        except DomainError as error:
            raise CommandError(error.message) from None

    def run(self, *args, **options):  # pragma: no cover - overridden
        raise NotImplementedError
