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
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/feedback_dash_bench"
ANNOTATORS = 30
GOLD_ITEMS = 50
OVERLAP = 3
MODELS = 8
# Natural-log strengths of model-1 .. model-8: each one a little better than the previous.
STRENGTH_STEP = 0.25
TIE_SHARE = 0.1
# Each item has a better response (drawn with the Bradley-Terry probability of its two
# models); an annotator names it with this probability.
ACCURACY = 0.85
DAYS = 30
MANAGER = "dash-manager"
REPEATS = 3
TARGET_SECONDS = 2.0


def log(message: str) -> None:
    print(message, flush=True)


def slug_for(judgments: int) -> str:
    return f"dash-{judgments // 1000}k"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="judgments per project")
    parser.add_argument("--reuse", action="store_true", help="keep an existing, already seeded database")
    parser.add_argument("--out", default="dashboard_time", help="results file stem in bench/results/")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs of each measurement (median reported)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- database


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def database_prepare(url: str, reuse: bool) -> bool:
    """Create the database (dropping an old one unless reusing); True when it already existed and is kept."""
    import psycopg
    from psycopg import sql

    name = _db_name(url)
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if exists and reuse:
            return True
        if exists:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return False


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback.settings")
    os.environ.setdefault("SECRET_KEY", "bench-not-secret")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    os.environ.setdefault("SECURE_COOKIES", "0")
    # A cache of its own: the cold runs clear it, and must not clear a development server's.
    os.environ.setdefault("CACHE_DIR", tempfile.mkdtemp(prefix="dashboard-bench-cache-"))
    # Refreshes are queued (a worker would run them); the recompute is timed on its own.
    os.environ.setdefault("TASKS_BACKEND", "database")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed_project(judgments: int) -> dict:
    """The project, its members and `judgments` judgments, all in SQL; returns what was made."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling.models import Judgment, Membership, Project

    slug = slug_for(judgments)
    project = Project.objects.filter(slug=slug).first()
    if project is not None and Judgment.objects.filter(project=project).exists():
        log(f"== {slug}: already seeded")
        return {"slug": slug, "seeded_now": False}
    project = project or Project.objects.create(slug=slug, title=f"Dashboard bench {slug}", overlap=OVERLAP)
    User = get_user_model()
    manager = User.objects.filter(username=MANAGER).first() or User.objects.create_user(MANAGER, password="x" * 12)
    Membership.objects.get_or_create(project=project, user=manager, defaults={"role": "manager"})
    annotator_ids = []
    for index in range(ANNOTATORS):
        user, _ = User.objects.get_or_create(username=f"dash-annotator-{index:02d}")
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": "annotator"})
        annotator_ids.append(user.pk)
    items = -(-(judgments - GOLD_ITEMS * ANNOTATORS) // OVERLAP)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SELECT setseed(0.42)")
        log(f"== {slug}: {items:,} items + {GOLD_ITEMS} gold, 2 responses each")
        _seed_items(cursor, project.pk, items)
        log(f"   items and responses: {time.perf_counter() - started:.1f} s")
        _seed_judgments(cursor, project.pk, annotator_ids, judgments)
        log(f"   assignments and judgments: {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    seeded = Judgment.objects.filter(project=project).count()
    return {
        "slug": slug,
        "seeded_now": True,
        "items": items + GOLD_ITEMS,
        "judgments": seeded,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _seed_items(cursor, project_id: int, items: int) -> None:
    # Model of each position: two different models per item, all pairs over the items.
    cursor.execute(
        """
        WITH new_items AS (
            INSERT INTO labeling_item
                (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                 priority, target, votes, filled, is_complete, created_at)
            SELECT %(project)s, 'item-' || g,
                   jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || g || '?')),
                   '{}'::jsonb,
                   NULL,  -- set with the judgments below
                   g <= %(gold)s,
                   CASE WHEN g <= %(gold)s THEN '[[0], [1]]'::jsonb END,
                   0, CASE WHEN g <= %(gold)s THEN %(annotators)s ELSE %(overlap)s END, 0, 0, false, now()
            FROM generate_series(1, %(total)s) AS g
            ORDER BY g
            RETURNING id, external_id
        )
        INSERT INTO labeling_response (item_id, position, model, content, metadata)
        SELECT i.id, p.pos,
               'model-' || (1 + CASE WHEN p.pos = 0 THEN (i.id * 7) %% %(models)s
                                     ELSE (i.id * 7 + 1 + i.id %% (%(models)s - 1)) %% %(models)s END),
               'Answer ' || (p.pos + 1) || ' to ' || i.external_id, '{}'::jsonb
        FROM new_items AS i CROSS JOIN (VALUES (0), (1)) AS p(pos)
        ORDER BY i.id, p.pos
        """,
        {
            "project": project_id,
            "total": items + GOLD_ITEMS,
            "gold": GOLD_ITEMS,
            "annotators": ANNOTATORS,
            "overlap": OVERLAP,
            "models": MODELS,
        },
    )


SEEDED_COLUMNS = {
    "labeling_assignment": {
        "id",
        "project_id",
        "item_id",
        "annotator_id",
        "state",
        "shown_order",
        "skip_reason",
        "created_at",
        "expires_at",
        "finished_at",
    },
    "labeling_judgment": {
        "id",
        "assignment_id",
        "project_id",
        "item_id",
        "annotator_id",
        "ranking",
        "strength",
        "both_bad",
        "rationale",
        "criteria",
        "seconds",
        "late",
        "created_at",
        "updated_at",
    },
}


def _extra_columns(cursor, table: str, known: dict[str, str]) -> tuple[str, str]:
    """Columns added by later migrations that need a value: SQL for the column list and the values.

    Django keeps defaults in Python, not in the schema, so a new NOT NULL column must be
    named here; the benchmark stops with a clear message when one is not.
    """
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    )
    extra = sorted({row[0] for row in cursor.fetchall()} - SEEDED_COLUMNS[table])
    unknown = [name for name in extra if name not in known]
    if unknown:
        raise SystemExit(f"{table} has NOT NULL columns the benchmark does not seed: {unknown}; add them here.")
    return "".join(f", {name}" for name in extra), "".join(f", {known[name]}" for name in extra)


def _seed_judgments(cursor, project_id: int, annotator_ids: list[int], judgments: int) -> None:
    """One assignment and one judgment per (item, slot); gold items get every annotator.

    Annotator 0 always picks the left response; annotator 1 answers in about a second;
    the others name the item's better response (drawn once per item with the
    Bradley-Terry probability of its models) 85% of the time, and tie 10% of the time.
    """
    cursor.execute(
        """
        CREATE TEMP TABLE bench_votes ON COMMIT DROP AS
        WITH pairs AS (
            SELECT i.id AS item_id, i.is_gold, i.external_id,
                   r0.id AS r0, r1.id AS r1,
                   substr(r0.model, 7)::int AS m0, substr(r1.model, 7)::int AS m1,
                   row_number() OVER (ORDER BY i.id) AS n,
                   random() AS u_item
            FROM labeling_item i
            JOIN labeling_response r0 ON r0.item_id = i.id AND r0.position = 0
            JOIN labeling_response r1 ON r1.item_id = i.id AND r1.position = 1
            WHERE i.project_id = %(project)s
        ), slots AS (
            SELECT p.*, s.slot,
                   (%(annotators)s::bigint[])[1 + ((p.n * %(overlap)s + s.slot) %% %(count)s)] AS annotator_id,
                   (p.n * %(overlap)s + s.slot) %% %(count)s AS annotator_index
            FROM pairs p
            JOIN LATERAL generate_series(0, CASE WHEN p.is_gold THEN %(count)s - 1 ELSE %(overlap)s - 1 END)
                AS s(slot) ON true
        )
        SELECT item_id, is_gold, r0, r1, annotator_id, annotator_index,
               random() < 0.5 AS r0_left,
               random() AS u_tie,
               random() AS u_win,
               u_item < 1.0 / (1.0 + exp(-(m0 - m1) * %(step)s)) AS r0_better,
               1 + floor(random() * 3)::int AS strength,
               random() < 0.05 AS both_bad,
               now() - (random() * %(days)s) * interval '1 day' AS created_at
        FROM slots
        """,
        {
            "project": project_id,
            "annotators": annotator_ids,
            "count": len(annotator_ids),
            "overlap": OVERLAP,
            "step": STRENGTH_STEP,
            "days": DAYS,
        },
    )
    cursor.execute(
        """
        CREATE TEMP TABLE bench_judgments ON COMMIT DROP AS
        SELECT v.*, gen_random_uuid() AS assignment_id,
               CASE
                   WHEN v.annotator_index = 0 THEN (CASE WHEN v.r0_left THEN 'r0' ELSE 'r1' END)
                   WHEN v.u_tie < %(ties)s THEN 'tie'
                   WHEN v.is_gold THEN (CASE WHEN v.u_win < 0.9 THEN 'r0' ELSE 'r1' END)
                   WHEN (v.u_win < %(accuracy)s) = v.r0_better THEN 'r0'
                   ELSE 'r1'
               END AS outcome,
               CASE WHEN v.annotator_index = 1 THEN 0.5 + random() ELSE 4 + random() * 40 END AS seconds
        FROM bench_votes v
        """,
        {"ties": TIE_SHARE, "accuracy": ACCURACY},
    )
    names, values = _extra_columns(cursor, "labeling_assignment", {"queued": "false"})
    # Column names come from information_schema and the table above; values are parameters.
    cursor.execute(
        f"""
        INSERT INTO labeling_assignment
            (id, project_id, item_id, annotator_id, state, shown_order, skip_reason, created_at, expires_at,
             finished_at{names})
        SELECT assignment_id, %(project)s, item_id, annotator_id, 'submitted',
               CASE WHEN r0_left THEN jsonb_build_array(r0, r1) ELSE jsonb_build_array(r1, r0) END,
               '', created_at - seconds * interval '1 second', created_at + interval '30 minutes', created_at{values}
        FROM bench_judgments
        """,  # noqa: S608
        {"project": project_id},
    )
    names, values = _extra_columns(cursor, "labeling_judgment", {"revision": "1"})
    # Column names come from information_schema and the table above; values are parameters.
    cursor.execute(
        f"""
        INSERT INTO labeling_judgment
            (id, assignment_id, project_id, item_id, annotator_id, ranking, strength, both_bad, rationale,
             criteria, seconds, late, created_at, updated_at{names})
        SELECT gen_random_uuid(), assignment_id, %(project)s, item_id, annotator_id,
               CASE outcome
                   WHEN 'r0' THEN jsonb_build_array(jsonb_build_array(r0), jsonb_build_array(r1))
                   WHEN 'r1' THEN jsonb_build_array(jsonb_build_array(r1), jsonb_build_array(r0))
                   ELSE jsonb_build_array(jsonb_build_array(r0, r1))
               END,
               CASE WHEN outcome = 'tie' THEN NULL ELSE strength END,
               both_bad, '', '{{}}'::jsonb, seconds, false, created_at, created_at{values}
        FROM bench_judgments
        """,  # noqa: S608
        {"project": project_id},
    )
    # The imported reference names the item's better response, as a careful labeler would 90% of the time.
    cursor.execute(
        """
        UPDATE labeling_item i
        SET reference = CASE WHEN v.r0_better = (random() < 0.9) THEN '[[0], [1]]'::jsonb ELSE '[[1], [0]]'::jsonb END
        FROM (SELECT DISTINCT item_id, r0_better FROM bench_votes) v
        WHERE v.item_id = i.id
        """
    )
    cursor.execute(
        """
        UPDATE labeling_item i SET votes = c.n, filled = c.n, is_complete = c.n >= i.target
        FROM (SELECT item_id, count(*) AS n FROM bench_judgments GROUP BY item_id) c
        WHERE c.item_id = i.id
        """
    )


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
        fields = Path(f"/proc/{self.backend_pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _recompute_in_child(project_id: int, conn) -> None:
    """Runs in a forked process: the task body, with its time, CPU and peak memory."""
    import resource

    from django.db import connection

    from labeling.services.jobs import refresh_stats

    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")
        cursor.execute("SELECT pg_backend_pid()")
        meter = Meter(cursor.fetchone()[0])
    start_rss = _rss_kb()
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
    import psycopg

    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ram_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    with psycopg.connect(db_url) as conn:
        pg_version = conn.execute("SELECT version()").fetchone()[0]
        pg_settings = {
            name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
            for name in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather")
        }
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in ("Django", "psycopg", "numpy", "pandas", "scipy", "scikit-learn", "krippendorff")
        },
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "cache": _cache_backend(),
        "git_commit": commit,
    }


def _cache_backend() -> str:
    from django.conf import settings

    return settings.CACHES["default"]["BACKEND"]


def largest_limit(report: dict) -> int:
    return max(result.get("inline_limit", 0) for result in report["projects"])


def write_results(out: str, report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{out}.json").write_text(json.dumps(report, indent=2) + "\n")
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
    (RESULTS / f"{out}.md").write_text("\n".join(lines))


def main(argv=None) -> None:
    args = parse_args(argv)
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_at_start = [round(value, 2) for value in os.getloadavg()]
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
        "load_at_end": [round(value, 2) for value in os.getloadavg()],
        "machine": describe_machine(args.db_url),
        "seeding": seeding,
        "projects": projects,
    }
    write_results(args.out, report)
    log(f"wrote bench/results/{args.out}.json and .md")


if __name__ == "__main__":
    main()
