"""API tokens: created for a user (shown once, stored hashed), checked on each request, revoked."""

import copy
import hashlib
import secrets
from time import monotonic

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from labeling.models import ApiToken
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.text import text_checked

TOKEN_PREFIX = "hf_lbl_"  # noqa: S105 - a public prefix, not a secret
TOKEN_NAME_MAX = 100


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(*, username: str, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token for the user; returns the row and the token, which is never stored."""
    user = User.objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"User '{username}' does not exist.")
    name = text_checked((name or "").strip(), "A token's name")
    if len(name) > TOKEN_NAME_MAX:
        raise InvalidInput(f"A token's name is at most {TOKEN_NAME_MAX} characters (got {len(name)}).")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name, prefix=token[:12], key_hash=_hash_token(token))
    return row, token


def token_authenticate(*, token: str) -> User | None:
    """The active user holding this token, or None."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    row = ApiToken.objects.select_related("user").filter(key_hash=_hash_token(token), revoked_at=None).first()
    if row is None or not row.user.is_active:
        return None
    now = timezone.now()
    # Touch at most once a minute so reads stay reads.
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.user


# token -> (monotonic deadline, user as read then). Per process; see API_TOKEN_CACHE_SECONDS.
_token_cache: dict[str, tuple[float, User]] = {}
_TOKEN_CACHE_MAX = 10_000


def token_user(*, token: str) -> User | None:
    """The user holding `token`, checked against the database at most every API_TOKEN_CACHE_SECONDS.

    A revoked token (or a deactivated user) keeps working in a process that checked it
    less than that many seconds before, never longer; refusals are never cached.
    """
    now = monotonic()
    cached = _token_cache.get(token)
    if cached is not None and cached[0] > now:
        return copy.copy(cached[1])  # a copy: per-request caches (permissions) must not outlive the request
    user = token_authenticate(token=token)
    ttl = settings.API_TOKEN_CACHE_SECONDS
    if user is None or ttl <= 0:
        _token_cache.pop(token, None)
        return user
    if len(_token_cache) >= _TOKEN_CACHE_MAX:
        _token_cache.clear()
    _token_cache[token] = (now + ttl, copy.copy(user))
    return user


def tokens_for_user(*, user: User) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first, revoked ones included (marked)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


def token_revoke(*, user: User, token_id: int | str) -> ApiToken:
    """Revoke one of the user's own tokens; another user's token is not found. Idempotent."""
    try:
        pk = int(token_id)
    except (TypeError, ValueError):
        raise NotFound("No such token.") from None
    row = ApiToken.objects.filter(pk=pk, user=user).first()
    if row is None:
        raise NotFound("No such token.")
    ApiToken.objects.filter(pk=row.pk, revoked_at=None).update(revoked_at=timezone.now())
    row.refresh_from_db(fields=["revoked_at"])
    return row
