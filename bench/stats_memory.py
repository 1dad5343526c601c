#!/usr/bin/env python
"""Memory (and CPU) of one stats recompute, `project_stats`, at 10k and 1M judgments.

The dataset card of every export calls `project_stats` when the stored figures are not
current, so the recompute's memory is part of the export's. This measures it on its own:

1. seeds the same projects as `dashboard_time.py` (`dashboard_seed.py`, in the database
   given by `--db-url`, created unless `--reuse` finds it seeded): pairwise, overlap 3,
   8 models, 30 annotators, 50 gold items, a reference on every item;
2. for each size, `--repeats` times, starts a fresh Python process that sets Django up,
   imports everything the recompute uses and runs it once on a tiny project first (so
   imports and first-call caches are not counted), then runs
   `project_stats(project=..., use_cache=False)` (progress counters and the full analysis,
   nothing stored) and reports:
   - peak RSS: the kernel's high-water mark (VmHWM), reset (`/proc/self/clear_refs`)
     just before the computation,
   - peak anonymous memory (RssAnon, RSS without file pages), polled every 5 ms by this
     (parent) process from `/proc/<child>/status`,
   - both as growth over the child's own RSS / RssAnon right before the computation,
   - wall time, the child's CPU seconds (user + system) and its PostgreSQL backend's;
3. with `--steps`, one more child per size runs the analysis step by step and reports
   each step's peak RSS over the RSS before it and the RSS left after it;
4. prints the figures and writes bench/results/<out>.json and .md (`--out`, default
   `stats_memory`). Load averages at the start and end are in the results: compare CPU
   seconds, not wall time, on a shared machine.

    .venv/bin/python bench/stats_memory.py --db-url postgres://postgres@127.0.0.1:5432/stats_bench
    .venv/bin/python bench/stats_memory.py --reuse --steps      # keep the seeded database
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import common
import dashboard_seed

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/feedback_stats_bench"
POLL_SECONDS = 0.005
WARM_SLUG = "stats-memory-warm-up"


def log(message: str) -> None:
    common.log(message, stderr=True)  # the child's stdout carries its report


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB_URL))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="judgments per project")
    parser.add_argument("--reuse", action="store_true", help="keep an existing, already seeded database")
    parser.add_argument("--repeats", type=int, default=3, help="children per size (median reported)")
    parser.add_argument("--steps", action="store_true", help="also measure each step of the analysis")
    parser.add_argument("--out", default="stats_memory", help="results file stem in bench/results/")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # slug: run in the child process
    parser.add_argument("--child-steps", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the child


def _status() -> dict[str, int]:
    """kB figures of /proc/self/status."""
    found = common.proc_status()
    return {name: found.get(name, 0) for name in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def _reset_peak() -> None:
    # Writing 5 resets the high-water mark of the RSS (VmHWM) to the present RSS (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def _backend_cpu(pid: int) -> float:
    return common.proc_cpu_seconds(pid) or 0.0


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _warm_up() -> None:
    """A tiny project through the same code, so imports and first-call costs are not measured."""
    from django.contrib.auth import get_user_model

    from labeling.models import Project
    from labeling.services.metrics import project_stats

    project = Project.objects.filter(slug=WARM_SLUG).first()
    if project is None:
        project = Project.objects.create(slug=WARM_SLUG, title="warm-up", overlap=1)
        get_user_model().objects.get_or_create(username="stats-memory-warm-up")
    project_stats(project=project, use_cache=False)


def _steps(project) -> list[tuple[str, object]]:
    """The analysis of `stats.analyse`, one callable per step (state kept in a dict)."""
    from labeling.services.metrics import agreement, annotators, leaderboard, loading, stats

    state: dict = {}

    def put(name, make):
        def run():
            state[name] = make()

        return run

    return [
        ("counts_read", put("counts", lambda: stats.counts_read(project=project))),
        ("judgments_load", put("judgments", lambda: loading.judgments_load(project=project))),
        ("responses_load", put("responses", lambda: loading.responses_load(project=project))),
        ("units_build", put("units", lambda: agreement.units_build(state["judgments"]))),
        (
            "answers_load (reference, gold)",
            put(
                "answers",
                lambda: (
                    loading.answers_load(project=project, field="reference", responses=state["responses"]),
                    loading.answers_load(project=project, field="gold_answer", responses=state["responses"]),
                ),
            ),
        ),
        ("leaderboard", put("leaderboard", lambda: leaderboard.leaderboard(state["units"], state["responses"]))),
        (
            "agreement_summary",
            put(
                "agreement",
                lambda: agreement.agreement_summary(state["judgments"], state["units"], state["answers"][0]),
            ),
        ),
        (
            "annotator_rows",
            put(
                "annotators",
                lambda: annotators.annotator_rows(state["judgments"], state["units"], state["answers"][1]),
            ),
        ),
    ]


def _run_steps(project, backend: int, into: list) -> None:
    for name, run in _steps(project):
        before = _status()
        _reset_peak()
        wall, cpu, db = time.perf_counter(), _cpu(), _backend_cpu(backend)
        run()
        after = _status()
        into.append(
            {
                "step": name,
                "wall_s": round(time.perf_counter() - wall, 3),
                "cpu_s": round(_cpu() - cpu, 3),
                "db_cpu_s": round(_backend_cpu(backend) - db, 3),
                "peak_rss_over_before_mb": round((after["VmHWM"] - before["VmRSS"]) / 1024, 1),
                "rss_after_mb": round(after["VmRSS"] / 1024, 1),
                "anon_after_mb": round(after["RssAnon"] / 1024, 1),
            }
        )


def child(slug: str, db_url: str, steps: bool) -> None:
    dashboard_seed.django_setup(db_url)
    from django.db import connection

    from labeling.models import Project
    from labeling.services.metrics import project_stats

    _warm_up()
    project = Project.objects.get(slug=slug)
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")  # all database work in one backend
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    report: dict = {"slug": slug, "before": _status()}
    print("ready", flush=True)  # the parent starts polling RssAnon now
    sys.stdin.readline()
    if steps:
        report["steps"] = []
        # The reads' work_mem, as stats.analyse sets it (code before it had no such context).
        reading_memory = getattr(importlib.import_module("labeling.db.chunks"), "reading_memory", None)
        with contextlib.ExitStack() as stack:
            if reading_memory is not None:
                stack.enter_context(reading_memory())
            _run_steps(project, backend, report["steps"])
    else:
        _reset_peak()
        wall, cpu, db = time.perf_counter(), _cpu(), _backend_cpu(backend)
        document = project_stats(project=project, use_cache=False)
        report.update(
            wall_s=round(time.perf_counter() - wall, 3),
            cpu_s=round(_cpu() - cpu, 3),
            db_cpu_s=round(_backend_cpu(backend) - db, 3),
            after=_status(),
            judgments=document["judgments"],
            document={key: document[key] for key in ("agreement", "annotators", "leaderboard")},
        )
    print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------- the parent


def run_child(slug: str, db_url: str, steps: bool) -> dict:
    command = [sys.executable, __file__, "--child", slug, "--db-url", db_url]
    if steps:
        command.append("--child-steps")
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    peak = {"anon": 0, "rss": 0}
    done = threading.Event()

    def poll():
        while not done.is_set():
            found = common.proc_status(process.pid)
            anon, rss = found.get("RssAnon", 0), found.get("VmRSS", 0)
            peak["anon"], peak["rss"] = max(peak["anon"], anon), max(peak["rss"], rss)
            time.sleep(POLL_SECONDS)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    process.stdin.write("go\n")
    process.stdin.flush()
    report = json.loads(process.stdout.readline())
    done.set()
    poller.join()
    process.wait()
    if steps:
        return report
    before, after = report.pop("before"), report.pop("after")
    report.update(
        rss_before_mb=round(before["VmRSS"] / 1024, 1),
        anon_before_mb=round(before["RssAnon"] / 1024, 1),
        peak_rss_mb=round(after["VmHWM"] / 1024, 1),
        peak_rss_growth_mb=round((after["VmHWM"] - before["VmRSS"]) / 1024, 1),
        peak_anon_mb=round(peak["anon"] / 1024, 1),
        peak_anon_growth_mb=round((peak["anon"] - before["RssAnon"]) / 1024, 1),
    )
    return report


FIGURES = (
    "wall_s",
    "cpu_s",
    "db_cpu_s",
    "rss_before_mb",
    "peak_rss_mb",
    "peak_rss_growth_mb",
    "anon_before_mb",
    "peak_anon_mb",
    "peak_anon_growth_mb",
)


def write_results(out: str, report: dict) -> None:
    lines = [
        "# Memory of one stats recompute (`project_stats`, nothing stored)",
        "",
        f"Run {report['started_at']}, commit {report['commit']}, {report['repeats']} fresh processes per size, "
        "medians shown (`bench/stats_memory.py`).",
        "",
        f"- Load average (1/5/15 min) at start: {' / '.join(map(str, report['load_at_start']))}; at the end: "
        f"{' / '.join(map(str, report['load_at_end']))}.",
        "- Data: the projects of `dashboard_time.py` (pairwise, overlap 3, 8 models, 30 annotators, 50 gold items, "
        "a reference on every item).",
        "- peak RSS = VmHWM reset just before the computation; peak anon = RssAnon polled every 5 ms; growth = over "
        "the same process right before the computation (Django set up, everything imported, warmed up on a tiny "
        "project). CPU s = the Python process (user + system); db CPU s = its PostgreSQL backend.",
        "",
        "| judgments | wall s | CPU s | db CPU s | RSS before MB | peak RSS MB (growth) | anon before MB | "
        "peak anon MB (growth) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in report["sizes"]:
        median = result["median"]
        lines.append(
            f"| {result['judgments']:,} | {median['wall_s']:.2f} | {median['cpu_s']:.2f} | {median['db_cpu_s']:.2f} | "
            f"{median['rss_before_mb']:.0f} | {median['peak_rss_mb']:.0f} ({median['peak_rss_growth_mb']:.0f}) | "
            f"{median['anon_before_mb']:.0f} | {median['peak_anon_mb']:.0f} ({median['peak_anon_growth_mb']:.0f}) |"
        )
    if len(report["sizes"]) > 1:
        small, large = report["sizes"][0]["median"], report["sizes"][-1]["median"]
        lines += [
            "",
            f"Peak at the largest size over the smallest: RSS {large['peak_rss_mb'] - small['peak_rss_mb']:.0f} MB, "
            f"anonymous {large['peak_anon_mb'] - small['peak_anon_mb']:.0f} MB.",
        ]
    for result in report["sizes"]:
        if not result.get("steps"):
            continue
        lines += [
            "",
            f"## Step by step at {result['judgments']:,} judgments (one process)",
            "",
            "| step | wall s | CPU s | db CPU s | peak RSS over the RSS before the step, MB | RSS after MB | "
            "anon after MB |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {step['step']} | {step['wall_s']:.2f} | {step['cpu_s']:.2f} | {step['db_cpu_s']:.2f} | "
            f"{step['peak_rss_over_before_mb']:.0f} | {step['rss_after_mb']:.0f} | {step['anon_after_mb']:.0f} |"
            for step in result["steps"]
        ]
    for result in report["sizes"]:
        document = result["runs"][0]["document"]
        lines += [
            "",
            f"## What the document said at {result['judgments']:,} judgments",
            "",
            f"- Agreement: {json.dumps({k: v for k, v in document['agreement'].items() if k != 'vote_splits'})}",
            f"- Vote splits: {json.dumps(document['agreement']['vote_splits'])}",
            "- Leaderboard: "
            + ", ".join(f"{r['model']} {r['score']} [{r['ci_low']}, {r['ci_high']}]" for r in document["leaderboard"]),
        ]
    common.results_write(out, report, "\n".join(lines) + "\n")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child(args.child, args.db_url, args.child_steps)
        return
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_at_start = common.load_average()
    dashboard_seed.database_prepare(args.db_url, args.reuse)
    dashboard_seed.django_setup(args.db_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    for size in args.sizes:
        dashboard_seed.seed_project(size)
    from django.db import connections

    connections.close_all()
    sizes = []
    for size in args.sizes:
        slug = dashboard_seed.slug_for(size)
        runs = []
        for _ in range(args.repeats):
            runs.append(run_child(slug, args.db_url, steps=False))
            log(f"== {slug}: " + ", ".join(f"{key} {runs[-1][key]}" for key in FIGURES))
        first = runs[0]["document"]
        if any(run["document"] != first for run in runs):
            raise SystemExit(f"{slug}: the runs gave different documents")
        result = {
            "slug": slug,
            "judgments": runs[0]["judgments"],
            "median": {key: round(statistics.median(run[key] for run in runs), 3) for key in FIGURES},
            "runs": runs,
        }
        if args.steps:
            result["steps"] = run_child(slug, args.db_url, steps=True)["steps"]
            for step in result["steps"]:
                log(f"   {step}")
        sizes.append(result)
    report = {
        "started_at": started_at,
        "commit": common.git_commit(dirty_note=True),
        "repeats": args.repeats,
        "load_at_start": load_at_start,
        "load_at_end": common.load_average(),
        "sizes": sizes,
    }
    write_results(args.out, report)
    log(f"wrote bench/results/{args.out}.json and .md")


if __name__ == "__main__":
    main()
