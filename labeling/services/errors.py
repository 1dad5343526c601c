"""Domain errors: messages a user can act on. Edges turn them into 4xx or exit codes."""


class DomainError(Exception):
    """A request the rules refuse; nothing was changed."""

    status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class ItemWithdrawn(Conflict):
    """The item was withdrawn by a manager while it was being judged: nothing to fix, move on."""


class InvalidInput(DomainError):
    status = 400
