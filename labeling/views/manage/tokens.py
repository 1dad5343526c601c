"""Each user's own API tokens: create (shown once), name, revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from labeling.forms import TokenForm
from labeling.services.errors import DomainError, NotFound
from labeling.services.tokens import token_create, token_revoke, tokens_for_user
from labeling.views.common import UNPROCESSABLE, AuthenticatedHttpRequest


@login_required
@require_http_methods(["GET", "POST"])
@never_cache  # the new token is in this page, once: no copy may be kept by a cache
def tokens(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            row, token = token_create(username=request.user.get_username(), name=form.cleaned_data["name"])
        except DomainError as error:
            form.add_service_error(error)
        else:
            created = {"row": row, "token": token}
            form = TokenForm()
    context = {"form": form, "created": created, "tokens": tokens_for_user(user=request.user)}
    return render(request, "labeling/manage/tokens.html", context, status=UNPROCESSABLE if form.errors else 200)


@login_required
@require_POST
def revoke(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        row = token_revoke(user=request.user, token_id=request.POST.get("token", ""))
    except NotFound as error:  # another user's token is indistinguishable from none
        raise Http404(error.message) from None
    messages.success(request, f"Token {row.prefix}… ({row.name or 'unnamed'}) is revoked.")
    return redirect("labeling:manage_tokens")
