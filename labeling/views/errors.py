"""Pages for refusals that come from outside our views (django-axes' login lockout)."""

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

TOO_MANY_REQUESTS = 429


def locked_out(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """The lockout page, in the app's look: how many failures, and when logging in works again."""
    cool_off = get_cool_off(request)
    context = {
        "failure_limit": get_failure_limit(request, credentials),
        "username": get_client_username(request, credentials) or "",
        "cooloff_timedelta": cool_off,
        "cooloff_minutes": round(cool_off.total_seconds() / 60) if cool_off else None,
        "unlocks_at": timezone.now() + cool_off if cool_off else None,
    }
    return render(request, "registration/locked_out.html", context, status=TOO_MANY_REQUESTS)
