"""Free text from users: checks every service applies before storing it."""

from labeling.services.errors import InvalidInput


def text_checked(value: str, field: str, *, limit: int | None = None) -> str:
    """The text, unless it holds a NUL byte (no database stores one) or runs past `limit`."""
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL byte; remove it.")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{field} is too long ({len(value):,} characters; at most {limit:,}).")
    return value
