"""The only way views and the API fetch project-scoped objects.

Every lookup goes through the user's memberships *in the query*, so an object of a
project the user is not a member of is indistinguishable from one that does not
exist: both answer 404.
"""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404

from labeling.models import Assignment, Job, Judgment, Membership, Project


def project_for_user(user: AbstractBaseUser, slug: str, *, manager: bool = False) -> Project:
    """The project named `slug` if `user` is a member (a manager when asked), else 404."""
    if not user.is_authenticated:
        raise Http404("No such project.")
    memberships = Membership.objects.filter(user=user)
    if manager:
        memberships = memberships.filter(role=Membership.Role.MANAGER)
    project = Project.objects.filter(slug=slug, memberships__in=memberships).first()
    if project is None:
        raise Http404("No such project.")
    return project


def projects_for_user(user: AbstractBaseUser):
    """The projects `user` belongs to, newest first."""
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct().order_by("-created_at")


def membership_for_user(user: AbstractBaseUser, project: Project) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, project=project).first()


def assignment_for_user(user: AbstractBaseUser, assignment_id: str, *, project: Project | None = None) -> Assignment:
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


def judgment_for_user(user: AbstractBaseUser, judgment_id: str, *, project: Project) -> Judgment:
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


def job_for_user(user: AbstractBaseUser, job_id: str) -> Job:
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
