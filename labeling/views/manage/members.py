"""A project's members: add existing users or create one, change roles, remove (judgments stay)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labeling.access import membership_in_project, project_for_manager
from labeling.forms import MemberForm
from labeling.models import Membership
from labeling.services.errors import DomainError
from labeling.services.members import members_list, membership_add, membership_remove, membership_role_set
from labeling.views.common import UNPROCESSABLE, AuthenticatedHttpRequest


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
def members(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    form = MemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            membership = membership_add(
                project=project,
                username=data["username"],
                role=data["role"],
                create=data["create"],
                password=data["password"] or None,
            )
        except DomainError as error:
            form.add_service_error(error)
        else:
            messages.success(
                request, f"{membership.user.get_username()} is now {_as(membership.role)} of this project."
            )
            return redirect("labeling:manage_members", slug=project.slug)
    return _page(request, project, form, status=UNPROCESSABLE if form.errors else 200)


@login_required
@require_POST
def member_role(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    membership = membership_in_project(project, request.POST.get("member", ""))
    try:
        membership = membership_role_set(membership=membership, role=request.POST.get("role", ""))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.get_username()} is now {_as(membership.role)}.")
        if membership.user_id == request.user.pk and membership.role != Membership.Role.MANAGER:
            return redirect("labeling:home")  # no longer allowed on this page
    return redirect("labeling:manage_members", slug=project.slug)


@login_required
@require_POST
def member_remove(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    membership = membership_in_project(project, request.POST.get("member", ""))
    try:
        membership_remove(membership=membership)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.get_username()} was removed; their judgments are kept.")
        if membership.user_id == request.user.pk:
            return redirect("labeling:home")
    return redirect("labeling:manage_members", slug=project.slug)
