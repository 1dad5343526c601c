"""A project's members: add existing users or create one, change roles, remove (judgments stay)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labeling.access import membership_in_project, project_for_manager
from labeling.models import Membership
from labeling.services.errors import DomainError
from labeling.services.projects import member_add, member_create, members_list, membership_remove, membership_role_set
from labeling.views.manage.common import UNPROCESSABLE, HtmxHttpRequest
from labeling.views.manage.forms import MemberForm


def _as(role: str) -> str:
    return "a manager" if role == Membership.Role.MANAGER else "an annotator"


def _page(request, project, form, *, status=200) -> HttpResponse:
    context = {
        "project": project,
        "form": form,
        "members": members_list(project=project),
        "roles": Membership.Role.choices,
        "section": "members",
    }
    return render(request, "labeling/manage/members.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def members(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if data["create"]:
                membership = member_create(
                    project=project, username=data["username"], password=data["password"], role=data["role"]
                )
            else:
                membership = member_add(project=project, username=data["username"], role=data["role"])
        except DomainError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request, f"{membership.user.get_username()} is now {_as(membership.role)} of this project."
            )
            return redirect("manage_members", slug=project.slug)
    return _page(request, project, form, status=UNPROCESSABLE if form.errors else 200)


@login_required
@require_POST
def member_role(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    membership = membership_in_project(project, request.POST.get("member", ""))
    try:
        membership = membership_role_set(membership=membership, role=request.POST.get("role", ""))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.get_username()} is now {_as(membership.role)}.")
        if membership.user_id == request.user.pk and membership.role != Membership.Role.MANAGER:
            return redirect("home")  # no longer allowed on this page
    return redirect("manage_members", slug=project.slug)


@login_required
@require_POST
def member_remove(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    membership = membership_in_project(project, request.POST.get("member", ""))
    try:
        membership_remove(membership=membership)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.get_username()} was removed; their judgments are kept.")
        if membership.user_id == request.user.pk:
            return redirect("home")
    return redirect("manage_members", slug=project.slug)
