"""Progress figures shown to annotators."""

from collections.abc import Mapping

from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils import timezone

from labeling.models import Item, Judgment, Membership, Project


def _item_counts() -> dict:
    return {"items": Count("id"), "complete": Count("id", filter=Q(is_complete=True))}


def items_progress(*, project: Project) -> dict:
    """{"items": how many the project has, "complete": how many are complete}: one query."""
    return Item.objects.filter(project=project).aggregate(**_item_counts())


def annotator_progress(*, project: Project, annotator: User) -> dict:
    """What the annotate page shows: the annotator's judgments (all, and since midnight UTC)
    and the project's items, complete and left. Two queries."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    mine = Judgment.objects.filter(project=project, annotator=annotator).aggregate(
        mine=Count("id"), today=Count("id", filter=Q(created_at__gte=today))
    )
    items = items_progress(project=project)
    return {**mine, **items, "left": items["items"] - items["complete"]}


def projects_progress(*, user: User) -> list[dict]:
    """Each project the user belongs to, with their role and the project's progress (three queries in all)."""
    memberships = list(Membership.objects.filter(user=user).select_related("project").order_by("-project__created_at"))
    projects = [membership.project_id for membership in memberships]
    items: dict[int, Mapping[str, object]] = {
        row["project"]: row
        for row in Item.objects.filter(project__in=projects).values("project").annotate(**_item_counts())
    }
    mine = dict(
        Judgment.objects.filter(project__in=projects, annotator=user)
        .values("project")
        .annotate(mine=Count("id"))
        .values_list("project", "mine")
    )
    none = {"items": 0, "complete": 0}
    return [
        {
            "project": membership.project,
            "role": membership.role,
            "mine": mine.get(membership.project_id, 0),
            "items": items.get(membership.project_id, none)["items"],
            "complete": items.get(membership.project_id, none)["complete"],
        }
        for membership in memberships
    ]
