#!/usr/bin/env python
"""How long the manager's dashboard takes on a big project: `project_stats` and the page.

What it does:

1. creates the PostgreSQL database `feedback_dash_bench` (dropped first unless
   `--reuse`), runs the migrations and seeds one pairwise project per size with SQL
   (`generate_series`, seeded `random()`): overlap 3, so N judgments are N/3 items of two
   responses each, from 8 models of known strength; 30 annotators (one always picks the
   left side, one answers in about a second), 50 gold items every annotator judged, an
   imported reference on every item (right 90% of the time), judgments spread over 30 days;
2. times, in this process (Django test client, same database, TASKS_BACKEND=database so
   a refresh is queued, not run):
   - `project_stats` cold (no stored document: what the command, the API or the dataset
     card cost after a new judgment) and warm (the stored document is current),
   - GET /p/<slug>/ (the overview page) as the project's manager: with no stored document
     yet, with a stored document out of date (what a manager sees after a new judgment;
     inline recompute at or under LABELING_STATS_INLINE_JUDGMENTS) and with a current one,
   - POST of the refresh request (claims the project's refresh slot and queues the task),
   - the background recompute itself (the task body, in a forked process, so its peak
     memory is measured on its own);
   with wall time, CPU seconds of this process and of the PostgreSQL backend, and queries;
3. prints the figures with a description of the machine and writes
   bench/results/dashboard_time.json and bench/results/dashboard_time.md.

    .venv/bin/python bench/dashboard_time.py                 # 10k and 1M judgments
    .venv/bin/python bench/dashboard_time.py --sizes 10000   # just the small one
    .venv/bin/python bench/dashboard_time.py --reuse         # keep a seeded database
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time

import common
from common import log
from dashboard_seed import MANAGER, database_prepare, django_setup, seed_project, slug_for

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/feedback_dash_bench"
REPEATS = 3
TARGET_SECONDS = 2.0
PG_SETTINGS = ("shared_buffers", "work_mem", "max_parallel_workers_per_gather")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="judgments per project")
    parser.add_argument("--reuse", action="store_true", help="keep an existing, already seeded database")
    parser.add_argument("--out", default="dashboard_time", help="results file stem in bench/results/")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each measurement (median reported)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- measuring


class Meter:
    """Wall time, this process's CPU time and the database backend's CPU time of a block.

    The machine may be shared, so wall time alone says little: CPU seconds of the client
    and of the PostgreSQL backend (parallel query is switched off for the session, so the
    backend does all the database work) add up to the wall time on an idle machine.
    """

    def __init__(self, backend_pid: int):
        self.backend_pid = backend_pid

    def _backend_cpu(self) -> float:
        return common.proc_cpu_seconds(self.backend_pid) or 0.0

    def measure(self, action) -> dict:
        from django.db import connection, reset_queries

        reset_queries()
        wall, cpu, backend = time.perf_counter(), time.process_time(), self._backend_cpu()
        action()
        return {
            "wall_s": round(time.perf_counter() - wall, 3),
            "client_cpu_s": round(time.process_time() - cpu, 3),
            "db_cpu_s": round(self._backend_cpu() - backend, 3),
            "queries": len(connection.queries),
        }


def _median(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


MEASURES = (
    ("stats_cold", "project_stats, no current document (computes)"),
    ("stats_warm", "project_stats, current document"),
    ("page_first", "overview page, no stored document yet"),
    ("page_stale", "overview page, stored document out of date"),
    ("page_current", "overview page, stored document current"),
    ("refresh_request", "refresh request (POST, queues the task)"),
    ("recompute", "background recompute (the task body)"),
)


def _recompute_in_child(project_id: int, conn) -> None:
    """Runs in a forked process: the task body, with its time, CPU and peak memory."""
    import resource

    from django.db import connection

    from labeling.services.jobs import refresh_stats

    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.execute("SELECT pg_backend_pid()")
        meter = Meter(cursor.fetchone()[0])
    start_rss = common.proc_status().get("VmRSS", 0)
    result = meter.measure(lambda: refresh_stats.call(project_id))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_mb"] = round(peak / 1024, 1)
    result["rss_growth_mb"] = round((peak - start_rss) / 1024, 1)
    connection.close()
    conn.send(result)
    conn.close()


def measure_recompute(project_id: int) -> dict:
    import multiprocessing

    from django.db import connections

    connections.close_all()  # the child opens its own connection
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_recompute_in_child, args=(project_id, send))
    child.start()
    result = receive.recv()
    child.join()
    return result


def measure_project(slug: str, repeats: int) -> dict:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.db.models import F
    from django.test import Client

    from labeling.models import Judgment, Project, StatsSnapshot
    from labeling.services.metrics import project_stats

    settings.DEBUG = True  # count queries (connection.queries); the page renders the same
    project = Project.objects.get(slug=slug)
    client = Client()
    client.force_login(get_user_model().objects.get(username=MANAGER))
    url = f"/p/{slug}/"
    refresh_url = f"/p/{slug}/stats/refresh/"

    def meter_now() -> Meter:
        # A fresh connection after each forked recompute: ask for the backend's pid again.
        with connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
            cursor.execute("SELECT pg_backend_pid()")
            return Meter(cursor.fetchone()[0])

    def forget():
        cache.clear()
        StatsSnapshot.objects.filter(project=project).delete()

    def out_of_date():
        # As if 5 judgments came in since: the stored key no longer matches; the slot is free.
        StatsSnapshot.objects.filter(project=project).update(
            judgments=F("judgments") - 5, refresh_claimed_at=None, error=""
        )

    def page():
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    def refresh_request():
        response = client.post(refresh_url, {"shown": ""}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200, response.status_code

    def runs(prepare, action) -> list[dict]:
        results = []
        for _ in range(repeats):
            prepare()
            results.append(meter_now().measure(action))
        return results

    def nothing():
        return None

    page()  # warm up imports, templates and the session
    project_stats(project=project)
    results = {
        "judgments": Judgment.objects.filter(project=project).count(),
        "inline_limit": settings.LABELING_STATS_INLINE_JUDGMENTS,
        "stats_cold": runs(forget, lambda: project_stats(project=project)),
        "stats_warm": runs(nothing, lambda: project_stats(project=project)),
        "page_first": runs(forget, page),
        "page_stale": [],
        "page_current": [],
        "refresh_request": [],
        "recompute": [],
    }
    project_stats(project=project)
    results["page_stale"] = runs(out_of_date, page)
    project_stats(project=project)
    results["page_current"] = runs(nothing, page)
    results["refresh_request"] = runs(out_of_date, refresh_request)
    for _ in range(repeats):
        out_of_date()
        results["recompute"].append(measure_recompute(project.pk))
    for key, _label in MEASURES:
        results[key] = {"median": _median(results[key]), "runs": results[key]}
    stats = project_stats(project=project)
    results["recompute_seconds_stored"] = StatsSnapshot.objects.get(project=project).seconds
    results["document"] = {
        "agreement": {key: value for key, value in stats["agreement"].items() if key != "vote_splits"},
        "flagged": {row["username"]: row["flags"] for row in stats["annotators"] if row["flags"]},
        "leaderboard": [(row["model"], row["score"], row["ci_low"], row["ci_high"]) for row in stats["leaderboard"]],
        "resamples": stats["leaderboard_method"]["resamples"],
    }
    settings.DEBUG = False
    return results


def describe_machine(db_url: str) -> dict:
    from django.conf import settings

    pg_version, pg_settings = common.pg_describe(db_url, PG_SETTINGS)
    return {
        "cpu_model": common.cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": common.ram_gb(),
        "kernel": common.kernel(),
        "python": platform.python_version(),
        "packages": {
            name: common.package_version(name)
            for name in ("Django", "psycopg", "numpy", "pandas", "scipy", "scikit-learn", "krippendorff")
        },
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "cache": settings.CACHES["default"]["BACKEND"],
        "git_commit": common.git_commit(),
    }


def largest_limit(report: dict) -> int:
    return max(result.get("inline_limit", 0) for result in report["projects"])


def write_results(out: str, report: dict) -> None:
    machine = report["machine"]
    pg_settings = ", ".join(f"{name}={value}" for name, value in machine["postgresql_settings"].items())
    lines = [
        "# Dashboard time: `project_stats` and the overview page",
        "",
        f"Run {report['started_at']}, commit {machine['git_commit']} (+ uncommitted changes), "
        f"{report['repeats']} runs each, medians shown.",
        "",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, "
        f"Linux {machine['kernel']}.",
        f"- Load average (1/5/15 min) at start: {' / '.join(map(str, report['load_at_start']))}; "
        f"at the end: {' / '.join(map(str, report['load_at_end']))}. The machine is shared: read wall times "
        "together with the CPU columns.",
        f"- Software: Python {machine['python']}, "
        + ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
        + f"; {machine['postgresql'].split(' on ')[0]} ({pg_settings}, parallel query off for the measured session); "
        "cache "
        f"`{machine['cache']}`.",
        "- Data: one pairwise project per size, overlap 3 (N/3 items of 2 responses from 8 models), 30 annotators, "
        "50 gold items judged by all, a reference on every item (right 90% of the time), judgments over 30 days; "
        "seeded in SQL.",
        "- The stored document (one row per project) is current when it was computed at the project's present "
        "judgment count and latest update. Out of date = as after new judgments: at or under "
        f"{largest_limit(report):,} judgments the page recomputes inline, above it the page shows the stored "
        "document with its age at once and asks for a background refresh (POST, htmx on load), which the "
        "recompute row times (run in a forked process: peak RSS is that process's, growth is over its RSS at fork).",
        "- client CPU = this Python process; db CPU = the PostgreSQL backend; on an idle machine wall ≈ their sum.",
        "",
        "| judgments | what | wall s | client CPU s | db CPU s | client + db CPU s | SQL queries | peak RSS MB "
        "(growth) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in report["projects"]:
        for key, label in MEASURES:
            if key not in result:
                continue
            median = result[key]["median"]
            both = median["client_cpu_s"] + median["db_cpu_s"]
            memory = f"{median['peak_rss_mb']:.0f} ({median['rss_growth_mb']:.0f})" if "peak_rss_mb" in median else ""
            lines.append(
                f"| {result['judgments']:,} | {label} | {median['wall_s']:.2f} | {median['client_cpu_s']:.2f} | "
                f"{median['db_cpu_s']:.2f} | {both:.2f} | {median['queries']:.0f} | {memory} |"
            )
    largest = max(report["projects"], key=lambda result: result["judgments"])
    slowest = max(largest[key]["median"]["wall_s"] for key in ("page_first", "page_stale", "page_current"))
    recompute = largest["recompute"]["median"]
    lines += [
        "",
        f"Target: the page within about {TARGET_SECONDS:.0f} s at 1,000,000 judgments. At {largest['judgments']:,} "
        f"the slowest page (no document, out of date or current) took {slowest:.2f} s wall "
        f"({'met' if slowest <= TARGET_SECONDS else 'not met'}): every view costs the two counting queries and one "
        f"row. The figures themselves are recomputed in the background in {recompute['wall_s']:.2f} s wall, "
        f"{recompute['client_cpu_s'] + recompute['db_cpu_s']:.2f} s of CPU, peaking at "
        f"{recompute['peak_rss_mb']:.0f} MB RSS; the page then reloads itself.",
        "",
    ]
    for result in report["projects"]:
        document = result["document"]
        lines += [
            f"## What the document said at {result['judgments']:,} judgments",
            "",
            f"- Agreement: {json.dumps(document['agreement'])}",
            f"- Flagged annotators: {json.dumps(document['flagged'])}",
            f"- Leaderboard (model, score, 95% interval; {document['resamples']} resamples): "
            + ", ".join(f"{model} {score} [{low}, {high}]" for model, score, low, high in document["leaderboard"]),
            "",
        ]
    common.results_write(out, report, "\n".join(lines))


def main(argv=None) -> None:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_at_start = common.load_average()
    database_prepare(args.db_url, args.reuse)
    django_setup(args.db_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # also on a kept database: the schema may have moved on
    seeding = [seed_project(size) for size in args.sizes]
    projects = []
    for size in args.sizes:
        log(f"== measuring {slug_for(size)}")
        result = measure_project(slug_for(size), args.repeats)
        for key, _label in MEASURES:
            log(f"   {key}: {result[key]['median']}")
        projects.append(result)
    report = {
        "started_at": started_at,
        "repeats": args.repeats,
        "load_at_start": load_at_start,
        "load_at_end": common.load_average(),
        "machine": describe_machine(args.db_url),
        "seeding": seeding,
        "projects": projects,
    }
    write_results(args.out, report)
    log(f"wrote bench/results/{args.out}.json and .md")


if __name__ == "__main__":
    main()
