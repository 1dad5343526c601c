"""Middleware that serves the web UI only: requests to the JSON API skip it.

The API (`/api/`) authenticates every request with a bearer token and sets
`request.user` itself; it reads no session, no cookie, no message and renders no
HTML. Running the session, authentication, messages, CSP and htmx middleware for
it cost about 0.5 ms of CPU per request for nothing. The one exception: an HTML response
under `/api/` (the interactive docs page) gets the Content-Security-Policy like any page. Each class here *is* the
middleware it names (a subclass, so Django's admin checks still find it)
and behaves exactly like it for every other path. CSRF, security headers,
X-Frame-Options and django-axes stay as they are for every request: they cost little
(the API's views are CSRF-exempt: no cookie authenticates them), and `check --deploy`
looks for them by name.
"""

from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django_htmx.middleware import HtmxMiddleware as _HtmxMiddleware

API_PREFIX = "/api/"


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


class _WebOnly:
    """Pass API requests straight to the next handler; everything else goes through the middleware."""

    def __call__(self, request):
        if is_api(request):
            self.for_api(request)
            return self.for_api_response(request, self.get_response(request))
        return super().__call__(request)

    def for_api(self, request) -> None:
        """What an API request gets instead of this middleware (nothing by default)."""

    def for_api_response(self, request, response):
        """What an API response gets instead of this middleware (nothing by default)."""
        return response


class SessionMiddleware(_WebOnly, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_WebOnly, _AuthenticationMiddleware):
    def for_api(self, request) -> None:
        request.user = AnonymousUser()  # until the bearer token is checked, nobody: the API never reads a session


class MessageMiddleware(_WebOnly, _MessageMiddleware):
    pass


class CSPMiddleware(_WebOnly, _CSPMiddleware):
    def for_api_response(self, request, response):
        # The API's HTML (the interactive docs page) gets the policy like any page; its JSON needs none.
        if response.get("Content-Type", "").startswith("text/html"):
            return self.process_response(request, response)
        return response


class HtmxMiddleware(_WebOnly, _HtmxMiddleware):
    pass
