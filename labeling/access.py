"""The only way views and the API fetch project-scoped objects.

Every lookup goes through the user's memberships *in the query*, so an object of a
project the user is not a member of is indistinguishable from one that does not
exist: both answer 404.
"""

import re
import uuid

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling.db.lookups import project_of_member
from labeling.models import Assignment, Item, Job, Judgment, Membership, Project

_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,64}\Z")  # anything else cannot name a project (and may upset the database)


def project_for_user(user: User | AnonymousUser, slug: str, *, manager: bool = False) -> Project:
    """The project named `slug` if `user` is a member (a manager when asked), else 404."""
    if not user.is_authenticated or not _SLUG.match(slug or ""):
        raise Http404("No such project.")
    project = project_of_member(slug=slug, user_id=user.pk, role=Membership.Role.MANAGER if manager else None)
    if project is None:
        raise Http404("No such project.")
    return project


def role_in_project(user: User | AnonymousUser, project: Project) -> str | None:
    """The user's role in `project` (what the app shell offers them), or None for outsiders."""
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def projects_for_user(user: User | AnonymousUser):
    """The projects `user` belongs to, newest first."""
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct().order_by("-created_at")


def assignment_for_user(
    user: User | AnonymousUser, assignment_id: str, *, project: Project | None = None
) -> Assignment:
    """The user's own assignment with that id, in a project they still belong to; else 404."""
    try:
        pk = uuid.UUID(str(assignment_id))
    except ValueError:
        raise Http404("No such assignment.") from None
    if not user.is_authenticated:
        raise Http404("No such assignment.")
    queryset = Assignment.objects.select_related("item", "project").filter(
        pk=pk, annotator=user, project__memberships__user=user
    )
    if project is not None:
        queryset = queryset.filter(project=project)
    assignment = queryset.first()
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


def judgment_for_user(user: User | AnonymousUser, judgment_id: str, *, project: Project) -> Judgment:
    """The user's own judgment with that id in `project`; else 404."""
    try:
        pk = uuid.UUID(str(judgment_id))
    except ValueError:
        raise Http404("No such judgment.") from None
    if not user.is_authenticated:
        raise Http404("No such judgment.")
    judgment = (
        Judgment.objects.select_related("assignment__item", "project")
        .filter(pk=pk, annotator=user, project=project, project__memberships__user=user)
        .first()
    )
    if judgment is None:
        raise Http404("No such judgment.")
    return judgment


def job_for_user(user: User | AnonymousUser, job_id: str) -> Job:
    """A job of a project the user manages; else 404."""
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        raise Http404("No such job.") from None
    if not user.is_authenticated:
        raise Http404("No such job.")
    job = (
        Job.objects.select_related("project")
        .filter(pk=pk, project__memberships__user=user, project__memberships__role=Membership.Role.MANAGER)
        .first()
    )
    if job is None:
        raise Http404("No such job.")
    return job


def project_for_manager(user: User | AnonymousUser, slug: str) -> Project:
    """The project named `slug` for its managers; 403 for its annotators; 404 for everyone else.

    Annotators know the project exists (they work in it), so telling them "not yours
    to manage" leaks nothing; outsiders cannot tell it from a project that does not exist.
    """
    if not user.is_authenticated or not _SLUG.match(slug or ""):
        raise Http404("No such project.")
    membership = Membership.objects.select_related("project").filter(user=user, project__slug=slug).first()
    if membership is None:
        raise Http404("No such project.")
    if membership.role != Membership.Role.MANAGER:
        raise PermissionDenied("Only the project's managers may do this.")
    return membership.project


def _int_id(value) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def item_in_project(project: Project, item_id) -> Item:
    """An item of `project` (already fetched through the user's memberships); else 404."""
    pk = _int_id(item_id)
    item = Item.objects.filter(project=project, pk=pk).first() if pk is not None else None
    if item is None:
        raise Http404("No such item.")
    return item


def membership_in_project(project: Project, membership_id) -> Membership:
    """A membership of `project` (already fetched through the user's memberships); else 404."""
    pk = _int_id(membership_id)
    membership = (
        Membership.objects.select_related("user").filter(project=project, pk=pk).first() if pk is not None else None
    )
    if membership is None:
        raise Http404("No such member.")
    return membership


def job_in_project(project: Project, job_id) -> Job:
    """A job of `project` (already fetched through the user's memberships); else 404."""
    try:
        pk = uuid.UUID(str(job_id))
    except ValueError:
        raise Http404("No such job.") from None
    job = Job.objects.select_related("created_by").filter(project=project, pk=pk).first()
    if job is None:
        raise Http404("No such job.")
    return job
