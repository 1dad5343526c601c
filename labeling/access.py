"""The only way views and the API fetch project-scoped objects.

Every lookup goes through the user's memberships *in the query*, so an object of a
project the user is not a member of is indistinguishable from one that does not
exist: both answer 404.
"""

import re
import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404

from labeling.db import sql
from labeling.models import Assignment, Item, Job, Judgment, Membership, Project

_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,64}\Z")  # anything else cannot name a project (and may upset the database)


def project_for_user(user: AbstractBaseUser, slug: str, *, manager: bool = False) -> Project:
    """The project named `slug` if `user` is a member (a manager when asked), else 404."""
    if not user.is_authenticated or not _SLUG.match(slug or ""):
        raise Http404("No such project.")
    # Hand-written: the API asks this on every request (see labeling/db/sql.py).
    query = (
        f"SELECT {sql.columns(Project, 'p')} FROM labeling_project p"  # noqa: S608 - column names, values are params
        " INNER JOIN labeling_membership m ON m.project_id = p.id"
        " WHERE p.slug = %s AND m.user_id = %s"
    )
    params = [slug, user.pk]
    if manager:
        query += " AND m.role = %s"
        params.append(Membership.Role.MANAGER)
    row = sql.one(query + " LIMIT 1", params)
    if row is None:
        raise Http404("No such project.")
    (project,) = sql.load_joined(row, Project)
    return project


def role_in_project(user: AbstractBaseUser, project: Project) -> str | None:
    """The user's role in `project` (what the app shell offers them), or None for outsiders."""
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def projects_for_user(user: AbstractBaseUser):
    """The projects `user` belongs to, newest first."""
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct().order_by("-created_at")


def assignment_for_user(
    user: AbstractBaseUser, assignment_id: str, *, project: Project | None = None, lock: bool = False
) -> Assignment:
    """The user's own assignment with that id, in a project they still belong to; else 404.

    `lock` (inside a transaction): the assignment row is locked by this same query
    and its state is the latest committed one (PostgreSQL re-reads a row it waited
    for), so `judgment_submit` need not lock it again. The item comes with only what
    a submit reads.
    """
    try:
        pk = uuid.UUID(str(assignment_id))
    except ValueError:
        raise Http404("No such assignment.") from None
    if not user.is_authenticated:
        raise Http404("No such assignment.")
    if lock:
        return _assignment_locked(user, pk, project)
    queryset = Assignment.objects.select_related("item", "project").filter(
        pk=pk, annotator=user, project__memberships__user=user
    )
    if project is not None:
        queryset = queryset.filter(project=project)
    assignment = queryset.first()
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


def _assignment_locked(user: AbstractBaseUser, pk: uuid.UUID, project: Project | None) -> Assignment:
    """`assignment_for_user(lock=True)`: one hand-written statement (see labeling/db/sql.py)."""
    assert connection.in_atomic_block, "lock=True needs a transaction"
    query = (
        f"SELECT {sql.columns(Assignment, 'a')}, {sql.columns(Project, 'p')}, i.id, i.withdrawn_at"  # noqa: S608
        " FROM labeling_assignment a"
        " INNER JOIN labeling_project p ON p.id = a.project_id"
        " INNER JOIN labeling_membership m ON m.project_id = a.project_id AND m.user_id = %s"
        " INNER JOIN labeling_item i ON i.id = a.item_id"
        " WHERE a.id = %s AND a.annotator_id = %s"
    )
    params = [user.pk, sql.prep(Assignment, "id", pk), user.pk]
    if project is not None:
        query += " AND a.project_id = %s"
        params.append(project.pk)
    if connection.features.has_select_for_update_of:
        query += " FOR UPDATE OF a"  # SQLite has no row locks: its transactions take the write lock at BEGIN
    row = sql.one(query, params)
    if row is None:
        raise Http404("No such assignment.")
    assignment, assignment.project = sql.load_joined(row, Assignment, Project)
    assignment.item = sql.load(Item, ("id", "withdrawn_at"), row[-2:])  # the rest of the item loads if read
    assignment.locked = True
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


def project_for_manager(user: AbstractBaseUser, slug: str) -> Project:
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
