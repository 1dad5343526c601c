"""`project_stats`: the stats document, cached until the project's judgments change."""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.models import Item, Judgment, Project
from labeling.services.errors import InvalidInput
from labeling.services.metrics.agreement import agreement_summary, units_build
from labeling.services.metrics.annotators import annotator_rows
from labeling.services.metrics.leaderboard import TIES, leaderboard
from labeling.services.metrics.loading import answers_load, judgments_load, responses_load

# Bump when the document's content changes, so cached documents of older code are not served.
STATS_VERSION = 2
# Longest a cached document lives: bounds how late edits the key does not see (references,
# gold answers, usernames) show up.
STATS_CACHE_SECONDS = 600


def project_stats(*, project: Project, ties: str = "half", use_cache: bool = True) -> dict:
    """Progress, agreement, annotators and leaderboard of `project` (the stats document).

    Protects "the same numbers everywhere": the CLI, the API, the dashboard and the
    dataset card all call this. Keys are only ever added.
    """
    if ties not in TIES:
        raise InvalidInput(f"`ties` must be one of {', '.join(TIES)}, not {ties!r}.")
    progress = Item.objects.filter(project=project).aggregate(
        items=Count("id"), items_complete=Count("id", filter=Q(is_complete=True))
    )
    latest = Judgment.objects.filter(project=project).aggregate(judgments=Count("id"), changed=Max("updated_at"))
    key = ":".join(
        str(part)
        for part in (
            "labeling-stats",
            STATS_VERSION,
            project.pk,
            project.created_at.timestamp() if project.created_at else "",
            latest["judgments"],
            latest["changed"].timestamp() if latest["changed"] else "",
            ties,
        )
    )
    analysis = cache.get(key) if use_cache else None
    if analysis is None:
        analysis = _analyse(project, ties)
        if use_cache:
            cache.set(key, analysis, STATS_CACHE_SECONDS)
    return {
        "items": progress["items"],
        "items_complete": progress["items_complete"],
        "judgments": latest["judgments"],
        **analysis,
    }


def _analyse(project: Project, ties: str) -> dict:
    judgments = judgments_load(project=project)
    responses = responses_load(project=project)
    units = units_build(judgments)
    references = answers_load(project=project, field="reference", responses=responses)
    gold_answers = answers_load(project=project, field="gold_answer", responses=responses)
    rows, matrix, method = leaderboard(units, responses, ties_policy=ties)
    return {
        "agreement": agreement_summary(judgments, units, references),
        "annotators": annotator_rows(judgments, units, gold_answers),
        "leaderboard": rows,
        "win_rates": matrix,
        "leaderboard_method": method,
        "judgments_per_day": _per_day(project),
        "computed_at": timezone.now().isoformat(),
    }


def _per_day(project: Project) -> list[dict]:
    days = (
        Judgment.objects.filter(project=project)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(judgments=Count("id"))
        .order_by("day")
    )
    return [{"date": row["day"].isoformat(), "judgments": row["judgments"]} for row in days]
