"""The dashboard's view of the stats: the stored document at once, refreshed in the background.

A manager should never wait for a recompute. A small project's document is computed
inline when it is out of date (well under a second below LABELING_STATS_INLINE_JUDGMENTS). A big
project's page shows the last stored document with its age and how many judgments came
since, and asks for one background refresh (a task; `stats_refresh_claim` makes it one
per project at a time); the page polls and reloads when the new document is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from labeling.models import Project, StatsSnapshot
from labeling.services.metrics.stats import (
    STATS_CACHE_SECONDS,
    counts_read,
    snapshot_current,
    stats_document,
    usable,
)

# A claim older than this is taken to be lost (a worker that died) and may be taken again.
REFRESH_CLAIM_SECONDS = 15 * 60


@dataclass(frozen=True)
class DashboardStats:
    """What the dashboard shows: a stats document (None before the first one exists) and how
    current it is."""

    stats: dict | None
    current: bool
    judgments_now: int
    refreshing: bool
    error: str
    last_seconds: float | None

    max_age_minutes = STATS_CACHE_SECONDS // 60  # a document older than this is recomputed

    @property
    def judgments_analysed(self) -> int | None:
        return self.stats.get("judgments_analysed") if self.stats else None

    @property
    def computed_at(self) -> datetime | None:
        return datetime.fromisoformat(self.stats["computed_at"]) if self.stats else None

    def newer_than(self, displayed: str) -> bool:
        """Whether these figures are not the ones a page computed at `displayed` shows."""
        return self.stats is not None and self.stats["computed_at"] != displayed

    @property
    def new_judgments(self) -> int:
        """Judgments made since the figures were computed (revisions are not counted)."""
        return max(self.judgments_now - (self.judgments_analysed or 0), 0)


def _claimed(snapshot: StatsSnapshot | None, now: datetime) -> bool:
    return (
        snapshot is not None
        and snapshot.refresh_claimed_at is not None
        and snapshot.refresh_claimed_at > now - timedelta(seconds=REFRESH_CLAIM_SECONDS)
    )


def dashboard_stats(*, project: Project) -> DashboardStats:
    """The document to show now. Computes inline only for a project of at most
    LABELING_STATS_INLINE_JUDGMENTS judgments; otherwise returns the stored document, current or not,
    and the caller asks for a refresh (`stats_refresh_start`) when it is not current.
    Three queries, whatever the size of the project."""
    counts = counts_read(project=project)
    snapshot = StatsSnapshot.objects.filter(project=project).first()
    now = timezone.now()
    if counts.matches(snapshot, now=now) or counts.judgments <= settings.LABELING_STATS_INLINE_JUDGMENTS:
        # The same `now` as above: a document that turns stale between the two checks must
        # not make a big project recompute inside the request.
        snapshot = snapshot_current(project=project, counts=counts, snapshot=snapshot, now=now)
        analysis, current = snapshot.document, True
    elif usable(snapshot):
        analysis, current = snapshot.document, False
    else:
        analysis, current = None, False
    return DashboardStats(
        stats=stats_document(counts, analysis) if analysis is not None else None,
        current=current,
        judgments_now=counts.judgments,
        refreshing=not current and _claimed(snapshot, now),
        error=(snapshot.error if snapshot is not None and not current else ""),
        last_seconds=snapshot.seconds if snapshot is not None else None,
    )


def stats_refresh_claim(*, project: Project) -> bool:
    """Take the project's one refresh slot; False when a refresh is already queued or running.

    Compare-and-set on `refresh_claimed_at`, so two managers opening the page at once (or
    one reloading it) queue one recompute, not two.
    """
    snapshot, _ = StatsSnapshot.objects.get_or_create(project=project)
    now = timezone.now()
    return bool(
        StatsSnapshot.objects.filter(pk=snapshot.pk)
        .filter(
            Q(refresh_claimed_at__isnull=True)
            | Q(refresh_claimed_at__lte=now - timedelta(seconds=REFRESH_CLAIM_SECONDS))
        )
        .update(refresh_claimed_at=now)
    )


def stats_refresh_release(*, project: Project, error: str = "") -> None:
    """Give the refresh slot back, recording why the refresh did not happen (`error`; the
    last document stays as it was) or clearing an earlier failure."""
    StatsSnapshot.objects.filter(project=project).update(
        refresh_claimed_at=None, error=error[:2000], failed_at=timezone.now() if error else None
    )


def stats_snapshot_refresh(*, project: Project) -> None:
    """The background refresh: compute and store the document unless it is already
    current, then release the slot. A failure keeps the last document and records why."""
    counts = counts_read(project=project)
    snapshot = StatsSnapshot.objects.filter(project=project).first()
    try:
        snapshot_current(project=project, counts=counts, snapshot=snapshot)
    except Exception as error:
        stats_refresh_release(project=project, error=f"The refresh failed ({type(error).__name__}: {error}).")
        raise
    stats_refresh_release(project=project)
