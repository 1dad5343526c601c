"""Project list and the manager's overview (the dashboard).

The overview shows the stats document (labeling.services.metrics) and nothing else, so
its numbers are the CLI's and the API's for the same judgments. A big project's page shows
the stored document at once, with its age, and asks for a background refresh
(`stats_refresh`, htmx on load, or a button without JavaScript); a status fragment polls and
reloads the page when the new figures are in. The geometry of its SVG plots is worked out
in labeling/views/charts.py.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRefresh

from labeling.access import project_for_manager
from labeling.services.jobs import stats_refresh_start
from labeling.services.metrics import (
    LOW_AGREEMENT,
    LOW_GOLD_ACCURACY,
    POSITION_BIAS_MIN_EFFECT,
    POSITION_BIAS_P,
    TOO_FAST_SECONDS,
)
from labeling.services.metrics.snapshot import DashboardStats, dashboard_stats
from labeling.services.progress import projects_progress
from labeling.views.charts import day_chart, heatmap, leaderboard_chart
from labeling.views.common import AuthenticatedHttpRequest, HtmxHttpRequest


@login_required
@require_GET
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "labeling/home.html", {"rows": projects_progress(user=request.user)})


@login_required
@require_GET
def overview(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    project = project_for_manager(request.user, slug)
    shown = dashboard_stats(project=project)
    stats = shown.stats
    context = {"project": project, "shown": shown, "stats": stats, "section": "overview"}
    if stats is not None:
        context |= {
            "complete_percent": round(100 * stats["items_complete"] / stats["items"]) if stats["items"] else 0,
            "day_chart": day_chart(stats["judgments_per_day"]),
            "leaderboard_chart": leaderboard_chart(stats["leaderboard"]),
            "heatmap": heatmap(stats["win_rates"]),
            "thresholds": {
                "position_bias_p": POSITION_BIAS_P,
                "position_bias_effect": POSITION_BIAS_MIN_EFFECT,
                "too_fast_seconds": TOO_FAST_SECONDS,
                "low_agreement": LOW_AGREEMENT,
                "low_gold_accuracy": LOW_GOLD_ACCURACY,
            },
        }
    return render(request, "labeling/overview.html", context)


@login_required
@require_POST
def stats_refresh(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """Ask for a background refresh of the figures (one at a time per project)."""
    project = project_for_manager(request.user, slug)
    stats_refresh_start(project=project)
    if not request.htmx:
        return redirect("labeling:project_overview", slug=project.slug)
    return _status(request, project, dashboard_stats(project=project))


@login_required
@require_GET
def stats_status(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    """The polled status fragment; reloads the page once figures newer than the shown ones are in."""
    project = project_for_manager(request.user, slug)
    return _status(request, project, dashboard_stats(project=project))


def _status(request: HtmxHttpRequest, project, shown: DashboardStats) -> HttpResponse:
    displayed = request.GET.get("shown") or request.POST.get("shown", "")
    if request.htmx and shown.newer_than(displayed):
        return HttpResponseClientRefresh()
    return render(request, "labeling/overview.html#status", {"project": project, "shown": shown, "polling": True})
