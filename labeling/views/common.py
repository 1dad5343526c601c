"""What the annotator's and the manager's views share: the request types, the refusal status, where to go back to."""

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails

UNPROCESSABLE = 422  # a refused form, shown again with its message (htmx swaps it too)


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's HtmxMiddleware (for type checkers)."""

    htmx: HtmxDetails


class AuthenticatedHttpRequest(HtmxHttpRequest):
    """A request to a `login_required` view: its user is signed in (for type checkers)."""

    user: User


def next_url(request: HttpRequest, fallback: str, *args) -> str:
    """Where to go back to after a POST: the form's own `next` when it is on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return resolve_url(fallback, *args)
