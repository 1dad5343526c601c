#!/usr/bin/env python
"""Latency and load benchmark of the annotation HTTP API: `next` + `submit` round trips.

The loop an annotator's client runs, POST /api/projects/{slug}/next then
POST /api/assignments/{id}/judgment, each on a NEW TCP connection, timed as a user meets it:

- on each database (`--db`): `sqlite` (the default settings path: no DATABASE_URL, the file
  from SQLITE_PATH), `sqlite-url` (the same file through DATABASE_URL=sqlite:///...) and
  `postgres` (a database of its own, `feedback_bench`);
- behind each server (`--servers`, `--postgres-servers`): `gunicorn feedback.wsgi` with 4 sync
  workers, or `manage.py runserver --noreload`; always DEBUG=0;
- in three phases (`--phases`):
  - `cold`: a server started just before, with no request sent to it (readiness is a TCP
    connect and its processes falling idle), and the first `--cold-round-trips` round trips
    of the annotators released together: the first requests of each worker;
  - `steady`: the project reset (no assignments or judgments, every item open, then
    VACUUM ANALYZE on PostgreSQL, ANALYZE on SQLite), `--warmup` round trips, then the
    measured round trips (`--round-trips` or `--duration`), as the benchmark always did;
  - `after-import`: a fresh database (migrate, a project, annotators), `--import-items`
    native JSON Lines rows imported through the real `manage.py import_items`, no
    maintenance at all, a server started after it; the first `--cold-round-trips` round
    trips, then `--after-import-round-trips` more on the now warm server.

Seeded projects (`--items`, one per size) are written with SQL (`generate_series` on
PostgreSQL, a recursive CTE on SQLite). Errors (500 "database is locked", refused or reset
connections) are counted, never fatal; "database is locked" is also counted in the server's
log. The in-process profile (Django test client, SQL per request, EXPLAIN, cProfile) runs on
PostgreSQL. Results: printed, and written to bench/results/<out>.json/.md (`--out`, default
api_latency, `--quick` api_latency_quick), with the machine, the load average with each
figure, and the commit of the code served (`--app-dir` chooses the checkout whose
manage.py/feedback.wsgi are served; the benchmark itself runs from this checkout).

    .venv/bin/pip install -r requirements-bench.txt
    flock /tmp/bench.lock .venv/bin/python bench/api_latency.py          # everything
    flock /tmp/bench.lock .venv/bin/python bench/api_latency.py --quick  # a few minutes
    .venv/bin/python bench/api_latency.py --db sqlite --phases cold --servers gunicorn --items 20000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import common
from common import HOST, RESULTS, ROOT, log
from latency.databases import BackendRenicer, Database, create_annotators, reset_project, setup_database, slug_for
from latency.phases import run_after_import, run_seeded, write_native_jsonl
from latency.profiling import profile_child, run_profile
from latency.report import evaluate_targets, markdown, print_summary, profile_markdown

DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/feedback_bench"
DEFAULT_SQLITE_DIR = Path(tempfile.gettempdir()) / "feedback_bench"
DATABASES = ("sqlite", "sqlite-url", "postgres")
SERVERS = ("gunicorn", "runserver")
PHASES = ("cold", "steady", "after-import")
PG_SETTINGS = ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "work_mem", "autovacuum")


def describe_machine(args) -> dict:
    pg_version, pg_settings = None, {}
    with contextlib.suppress(Exception):
        pg_version, pg_settings = common.pg_describe(common.db_url_with_name(args.db_url, "postgres"), PG_SETTINGS)
    return {
        "cpu_model": common.cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gb": common.ram_gb(),
        "kernel": common.kernel(),
        "load_average_at_start": common.load_average(),
        "cpu_busy_fraction_at_start": common.busy_fraction(1.0),
        "top_processes_at_start": common.top_processes(),
        "python": platform.python_version(),
        "django": common.package_version("Django"),
        "gunicorn": common.package_version("gunicorn"),
        "psycopg": common.package_version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
    }


def split_choices(parser, value: str, choices: tuple[str, ...], option: str) -> list[str]:
    chosen = [x.strip() for x in value.split(",") if x.strip()]
    aliases = {"both": ["sqlite", "postgres"], "all": list(DATABASES)} if option == "--db" else {}
    expanded = [name for x in chosen for name in aliases.get(x, [x])]
    unknown = [x for x in expanded if x not in choices]
    if unknown:
        parser.error(f"{option}: unknown {unknown}; choose from {', '.join(choices)}")
    return list(dict.fromkeys(expanded))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--db",
        default="all",
        help="databases, comma-separated: sqlite (SQLITE_PATH, the default settings), sqlite-url "
        "(DATABASE_URL=sqlite:///...), postgres; `both` = sqlite,postgres; `all` (default) = the three",
    )
    add("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)} (default all)")
    add("--servers", default="gunicorn,runserver", help="servers for SQLite (default gunicorn,runserver)")
    add("--postgres-servers", default="gunicorn", help="servers for PostgreSQL (default gunicorn)")
    add(
        "--sqlite-url-servers",
        default="gunicorn",
        help="servers for sqlite-url (default gunicorn; cold and steady only, at the smallest --items size)",
    )
    add("--items", default="20000,1000000", help="seeded project sizes, comma-separated (default 20000,1000000)")
    add("--concurrency", default="1,8", help="simultaneous annotators, comma-separated (default 1,8)")
    add("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    add("--round-trips", type=int, default=2000, help="steady: measured round trips per configuration, at most")
    add("--duration", type=float, default=30.0, help="steady: seconds per configuration, at most (default 30)")
    add("--warmup", type=int, default=100, help="steady: warm-up round trips per configuration, all annotators")
    add("--cold-round-trips", type=int, default=20, help="cold, after-import: first round trips timed (default 20)")
    add("--import-items", type=int, default=200_000, help="after-import: rows imported (default 200,000)")
    add(
        "--after-import-round-trips",
        type=int,
        default=300,
        help="after-import: round trips timed after the first ones, on the warm server, still without "
        "maintenance (default 300; 0 skips)",
    )
    add("--keep-import-db", action="store_true", help="keep the after-import databases (for a look afterwards)")
    add(
        "--think-ms",
        default="0",
        help="steady: mean pause after each round trip, comma-separated: each value is its own configuration "
        "(default 0: back to back; e.g. 0,1000 adds readers pausing 0.5 to 1.5 s)",
    )
    add(
        "--quick",
        action="store_true",
        help="a few minutes: 20,000 items, 1 and 8 annotators, 300 round trips, an import of 20,000 items",
    )
    add("--reuse", action="store_true", help="keep already-seeded databases instead of creating them anew")
    add("--drop", action="store_true", help="drop the benchmark databases at the end")
    add(
        "--wait-idle",
        type=float,
        default=None,
        help="before each steady configuration wait until the machine is busy "
        "less than this share (e.g. 0.3), at most --wait-max seconds",
    )
    add("--wait-max", type=float, default=300.0, help="longest wait for --wait-idle, seconds")
    add("--no-profile", action="store_true", help="skip the in-process profile (PostgreSQL, steady phase)")
    add("--profile-rounds", type=int, default=300, help="round trips of the in-process profile")
    add("--db-url", default=DEFAULT_DB_URL, help="the benchmark's own PostgreSQL database (created, reset, dropped)")
    add(
        "--sqlite-dir",
        type=Path,
        default=DEFAULT_SQLITE_DIR,
        help=f"folder of the benchmark's SQLite files (default {DEFAULT_SQLITE_DIR})",
    )
    add(
        "--app-dir",
        type=Path,
        default=ROOT,
        help="checkout whose manage.py, feedback.wsgi and labeling/ are served and profiled (default: this one)",
    )
    add("--conn-max-age", type=int, default=60, help="DB_CONN_MAX_AGE for the server (default 60)")
    add("--out", default=None, help="results file stem in bench/results (default api_latency, api_latency_quick)")
    add("--note", action="append", default=[], help="a note to keep with the results (repeatable)")
    add(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority (e.g. -10, needs root) for the benchmark, the server and the PostgreSQL "
        "backends serving it, to keep other work on a shared machine from distorting the figures",
    )
    add("--profile-child", help=argparse.SUPPRESS)
    add("--profile-token", help=argparse.SUPPRESS)
    add("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.items = "20000"
        args.round_trips, args.duration, args.warmup, args.profile_rounds = 300, 10.0, 20, 100
        args.import_items, args.after_import_round_trips = 20_000, 100
        args.think_ms = "0"
    args.db = split_choices(parser, args.db, DATABASES, "--db")
    args.phases = split_choices(parser, args.phases, PHASES, "--phases")
    args.servers = split_choices(parser, args.servers, SERVERS, "--servers")
    args.postgres_servers = split_choices(parser, args.postgres_servers, SERVERS, "--postgres-servers")
    args.sqlite_url_servers = split_choices(parser, args.sqlite_url_servers, SERVERS, "--sqlite-url-servers")
    args.items = [int(x.replace("_", "")) for x in str(args.items).split(",") if x.strip()]
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    args.think_ms = [float(x) for x in str(args.think_ms).split(",") if x.strip()]
    args.app_dir = args.app_dir.resolve()
    args.sqlite_dir = args.sqlite_dir.resolve()
    if not (args.app_dir / "manage.py").is_file():
        parser.error(f"--app-dir {args.app_dir} has no manage.py")
    args.out = args.out or ("api_latency_quick" if args.quick else "api_latency")
    if not args.out.startswith("api_latency"):
        parser.error("--out must start with api_latency")
    if common.db_name(args.db_url) in ("", "postgres", "template0", "template1"):
        parser.error("--db-url must name the benchmark's own database; it is dropped and created")
    return args


def databases(args) -> list[Database]:
    sqlite_path = args.sqlite_dir / "bench.sqlite3"
    found = {
        "sqlite": Database("sqlite", path=sqlite_path),
        "sqlite-url": Database("sqlite-url", path=sqlite_path),
        "postgres": Database("postgres", url=args.db_url),
    }
    return [found[name] for name in args.db]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile_child:
        profile_child(args.profile_child, args.profile_token, args.profile_rounds, 100, args.profile_out)
        return 0
    # Stop cleanly (servers and the annotator processes too) on Ctrl-C or kill, even when
    # started in the background, where SIGINT may arrive ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by the servers and the annotator processes
        # With autogroup scheduling, nice only ranks processes within their session's group:
        # give this session's group (this process, the servers, the annotators) the priority too.
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(args.nice))
    started_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    machine = describe_machine(args)
    log(f"== {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB")
    log(f"   load average {machine['load_average_at_start']}, busy {machine['cpu_busy_fraction_at_start']:.0%}")
    code_at_start = common.code_state(args.app_dir)
    log(f"   serving {args.app_dir} at {code_at_start.get('commit')} (dirty: {code_at_start.get('work_tree_dirty')})")
    dbs = databases(args)
    seeding, tokens = {}, {}
    configurations, imports, notes, profiles = [], [], list(args.note), {}
    seeded = "cold" in args.phases or "steady" in args.phases
    jsonl_folder = tempfile.TemporaryDirectory(prefix="bench-import-")
    try:
        if seeded:
            for db in dbs:
                if db.storage not in seeding:
                    seeding[db.storage] = setup_database(args, db, args.items)
                    slugs = [slug_for(n) for n in args.items]
                    tokens[db.storage] = create_annotators(args, db, max(args.concurrency), slugs)
        jsonl = Path(jsonl_folder.name) / f"native-{args.import_items}.jsonl"
        if "after-import" in args.phases:
            log(f"== writing {args.import_items:,} native rows to {jsonl}")
            write_native_jsonl(jsonl, args.import_items)
        for db in dbs:
            kinds = {"postgres": args.postgres_servers, "sqlite-url": args.sqlite_url_servers}.get(
                db.kind, args.servers
            )
            # sqlite-url is the same file as sqlite through another settings path: the smallest size is enough
            sizes = args.items[:1] if db.kind == "sqlite-url" else args.items
            for kind in kinds:
                if seeded:
                    for items in sizes:
                        for concurrency in args.concurrency:
                            configurations += run_seeded(args, db, kind, items, concurrency, tokens[db.storage])
                if "after-import" in args.phases and db.kind != "sqlite-url":
                    facts, configs = run_after_import(args, db, kind, jsonl)
                    imports.append(facts)
                    configurations += configs
        code_at_end = common.code_state(args.app_dir)
        if code_at_end.get("fingerprint") != code_at_start.get("fingerprint"):
            notes.append(
                f"The app code changed during the run ({code_at_start.get('fingerprint')} -> "
                f"{code_at_end.get('fingerprint')}): the figures may mix the two."
            )
        postgres = next((db for db in dbs if db.engine == "postgres"), None)
        if postgres and "steady" in args.phases and not args.no_profile:
            for items in args.items:
                log(f"== in-process profile (PostgreSQL), {items:,} items")
                try:
                    with BackendRenicer(args, postgres):
                        profiles[slug_for(items)] = run_profile(
                            args, postgres, slug_for(items), tokens[postgres.storage][0]
                        )
                except SystemExit as failure:  # keep the measured figures; say why the profile is missing
                    log(f"   {failure}")
                    notes.append(f"The in-process profile of {items:,} items failed: {str(failure).splitlines()[0]}")
                reset_project(postgres, slug_for(items))
    finally:
        jsonl_folder.cleanup()
    client = (
        "one OS process per simulated annotator (no GIL shared between them), http.client, a new TCP "
        "connection per request (Connection: close), on the same machine as the server and PostgreSQL, "
        "competing with them for the cores (its CPU is measured below)"
    )
    report = {
        "benchmark": "api_latency",
        "started_at": started_at,
        "command": " ".join(["bench/api_latency.py", *(argv if argv is not None else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "out": args.out,
        "duration_seconds": round(time.monotonic() - t0, 1),
        "machine": machine,
        "code": {"served": code_at_start, "at_end": code_at_end},
        "load_average_at_end": common.load_average(),
        "database": {
            "description": "; ".join(f"{db.kind}: {db.where}" for db in dbs)
            + (
                f"; after-import: a fresh database beside each ({', '.join(db.sibling('_import').where for db in dbs)})"
                if "after-import" in args.phases
                else ""
            ),
            "seeding": seeding,
        },
        "server": {
            "commands": server_labels(args),
            "workers": args.workers,
            "conn_max_age": args.conn_max_age,
            "env": {"DEBUG": "0", "SECRET_KEY": "bench", "ALLOWED_HOSTS": HOST, "LOG_LEVEL": "WARNING"},
            "nice": args.nice,
        },
        "client": client,
        "budget": {
            "phases": args.phases,
            "round_trips": args.round_trips,
            "seconds": args.duration,
            "warmup_round_trips": args.warmup,
            "cold_round_trips": args.cold_round_trips,
            "import_items": args.import_items,
            "after_import_round_trips": args.after_import_round_trips,
            "think_ms": args.think_ms,  # one configuration per value
            "note": "`cold`: a server started just before with no request sent to it, the first "
            f"{args.cold_round_trips} round trips; `steady`: each configuration starts from a reset project (no "
            "assignments or judgments, all items open, then VACUUM ANALYZE on PostgreSQL, ANALYZE of the "
            f"assignment and judgment tables on SQLite, whose items were ANALYZEd after seeding), {args.warmup} "
            f"warm-up round trips, then at most {args.round_trips:,} round trips or {args.duration:g} s; "
            f"`after-import`: a fresh database, `manage.py import_items` of {args.import_items:,} native JSONL "
            f"rows, no maintenance, a server started after it: its first {args.cold_round_trips} round trips, then "
            f"{args.after_import_round_trips} more (`after-import-warm`). Overlap 1: each round trip judges a "
            "fresh item.",
        },
        "imports": imports,
        "configurations": configurations,
        "targets": evaluate_targets(configurations),
        "profile": profiles,
        "notes": notes,
    }
    common.results_write(args.out, report, markdown(report))
    if profiles:
        (RESULTS / f"{args.out}_profile.md").write_text(profile_markdown(report))
    print_summary(report)
    log(f"\nwrote {RESULTS / (args.out + '.json')} and {RESULTS / (args.out + '.md')}")
    if args.drop:
        for db in dbs:
            db.drop()
            log(f"dropped database {db.where}")
    return 0


def server_labels(args) -> list[str]:
    kinds = set(args.servers if "sqlite" in args.db else [])
    kinds |= set(args.sqlite_url_servers if "sqlite-url" in args.db else [])
    kinds |= set(args.postgres_servers if "postgres" in args.db else [])
    return [
        f"gunicorn feedback.wsgi --workers {args.workers} --bind 127.0.0.1:<port>"
        if kind == "gunicorn"
        else "manage.py runserver --noreload 127.0.0.1:<port>"
        for kind in sorted(kinds)
    ]


if __name__ == "__main__":
    sys.exit(main())
