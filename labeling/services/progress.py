"""Progress figures shown to annotators."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q

from labeling.models import Item, Judgment, Membership, Project


def annotator_progress(*, project: Project, annotator: AbstractBaseUser) -> dict:
    counts = Item.objects.filter(project=project).aggregate(
        items=Count("id"), complete=Count("id", filter=Q(is_complete=True))
    )
    return {"mine": Judgment.objects.filter(project=project, annotator=annotator).count(), **counts}


def projects_progress(*, user: AbstractBaseUser) -> list[dict]:
    """Each project the user belongs to, with their role and the project's progress."""
    memberships = Membership.objects.filter(user=user).select_related("project").order_by("-project__created_at")
    return [
        {
            "project": membership.project,
            "role": membership.role,
            **annotator_progress(project=membership.project, annotator=user),
        }
        for membership in memberships
    ]
