"""`project_stats`: the stats document, stored until the project's judgments change."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeGuard, cast

from django.core.cache import cache
from django.db.models import Count, Max
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling.db.chunks import reading_memory
from labeling.models import Judgment, Project, StatsSnapshot
from labeling.services.errors import InvalidInput
from labeling.services.metrics.agreement import agreement_summary, units_build
from labeling.services.metrics.annotators import annotator_rows
from labeling.services.metrics.leaderboard import TIES, leaderboard
from labeling.services.metrics.loading import answers_load, judgments_load, responses_load
from labeling.services.progress import items_progress

# Bump when the document's content changes, so documents of older code are not served.
STATS_VERSION = 3
# Longest a stored document counts as current: bounds how late edits the key does not see
# (references, gold answers, usernames) show up.
STATS_CACHE_SECONDS = 600
# The tie policy whose document is stored for the dashboard (the default everywhere).
STORED_TIES = "half"


@dataclass(frozen=True)
class Counts:
    """What is read fresh on every call: progress, and the key of the judgments' state
    (how many there are and when the latest was made or revised)."""

    items: int
    items_complete: int
    judgments: int
    changed: datetime | None

    def matches(self, snapshot: StatsSnapshot | None, *, now: datetime | None = None) -> TypeGuard[StatsSnapshot]:
        """Whether `snapshot` was computed from exactly these judgments, by this code, recently enough."""
        now = now or timezone.now()
        return (
            usable(snapshot)
            and snapshot.judgments == self.judgments
            and snapshot.judgments_changed_at == self.changed
            and snapshot.computed_at is not None
            and snapshot.computed_at > now - timedelta(seconds=STATS_CACHE_SECONDS)
        )


def usable(snapshot: StatsSnapshot | None) -> TypeGuard[StatsSnapshot]:
    """Whether `snapshot` holds a document this code can show (current or not)."""
    return snapshot is not None and snapshot.document is not None and snapshot.version == STATS_VERSION


def snapshot_current(
    *, project: Project, counts: Counts, snapshot: StatsSnapshot | None, now: datetime | None = None
) -> StatsSnapshot:
    """`snapshot` when it was computed from exactly these judgments (judged at `now`), else a newly computed one."""
    return snapshot if counts.matches(snapshot, now=now) else snapshot_compute(project=project, counts=counts)


def counts_read(*, project: Project) -> Counts:
    progress = items_progress(project=project)
    # count(*), not count(id): with the (project, updated_at) index PostgreSQL answers from the index alone.
    latest = Judgment.objects.filter(project=project).aggregate(judgments=Count("*"), changed=Max("updated_at"))
    return Counts(progress["items"], progress["complete"], latest["judgments"], latest["changed"])


def stats_document(counts: Counts, analysis: dict) -> dict:
    """The stats document: fresh progress counters, then the (stored) analysis."""
    return {
        "items": counts.items,
        "items_complete": counts.items_complete,
        "judgments": counts.judgments,
        **analysis,
    }


def project_stats(*, project: Project, ties: str = "half", use_cache: bool = True) -> dict:
    """Progress, agreement, annotators and leaderboard of `project` (the stats document).

    Protects "the same numbers everywhere": the CLI, the API, the dashboard and the
    dataset card all show the document computed for the same judgments. Always current:
    computes (and stores) a new document when the judgments changed. Keys are only ever added.
    """
    if ties not in TIES:
        raise InvalidInput(f"`ties` must be one of {', '.join(TIES)}, not {ties!r}.")
    counts = counts_read(project=project)
    if not use_cache:
        return stats_document(counts, analyse(project=project, ties=ties, counts=counts))
    if ties == STORED_TIES:
        snapshot = StatsSnapshot.objects.filter(project=project).first()
        current = snapshot_current(project=project, counts=counts, snapshot=snapshot)
        return stats_document(counts, cast(dict, current.document))  # a current snapshot holds its document
    key = ":".join(
        str(part)
        for part in (
            "labeling-stats",
            STATS_VERSION,
            project.pk,
            project.created_at.timestamp() if project.created_at else "",
            counts.judgments,
            counts.changed.timestamp() if counts.changed else "",
            ties,
        )
    )
    analysis = cache.get(key)
    if analysis is None:
        analysis = analyse(project=project, ties=ties, counts=counts)
        cache.set(key, analysis, STATS_CACHE_SECONDS)
    return stats_document(counts, analysis)


def snapshot_compute(*, project: Project, counts: Counts) -> StatsSnapshot:
    """Compute the stored-policy analysis and keep it as the project's snapshot, keyed by
    `counts` (read *before* the judgments: one arriving meanwhile makes it stale, never lost)."""
    started = time.perf_counter()
    analysis = analyse(project=project, ties=STORED_TIES, counts=counts)
    snapshot, _ = StatsSnapshot.objects.update_or_create(
        project=project,
        defaults={
            "document": analysis,
            "version": STATS_VERSION,
            "judgments": counts.judgments,
            "judgments_changed_at": counts.changed,
            "computed_at": datetime.fromisoformat(analysis["computed_at"]),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return snapshot


def analyse(*, project: Project, ties: str, counts: Counts) -> dict:
    with reading_memory():
        judgments = judgments_load(project=project)
        responses = responses_load(project=project)
        references = answers_load(project=project, field="reference", responses=responses)
        gold_answers = answers_load(project=project, field="gold_answer", responses=responses)
    units = units_build(judgments)
    rows, matrix, method = leaderboard(units, responses, ties_policy=ties)
    return {
        "agreement": agreement_summary(judgments, units, references),
        "annotators": annotator_rows(judgments, units, gold_answers),
        "leaderboard": rows,
        "win_rates": matrix,
        "leaderboard_method": method,
        "judgments_per_day": _per_day(project),
        "computed_at": timezone.now().isoformat(),
        # The judgment count the figures were computed at (progress counters are always live).
        "judgments_analysed": counts.judgments,
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
