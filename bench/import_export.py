"""Import and export throughput and peak memory, through the real management commands.

Import: flat pairs (`id`, `prompt`, `response_a`, `response_b`, `model_a`, `model_b`;
responses of 200-600 characters) generated deterministically into a temp folder as
JSONL and as Parquet (pyarrow, row groups of 100,000 rows), imported with
`manage.py import_items` into a fresh migrated SQLite file (SQLITE_PATH) and a fresh
PostgreSQL database (`feedback_io_bench`, created and dropped here). Export:
the same judgments seeded with SQL (`INSERT ... SELECT`, overlap 1, every assignment
submitted) into a SQLite file and into PostgreSQL, and written with
`manage.py export_preferences SLUG --out DIR` (hf format, default config).

Every command runs in its own process; the figures are its wall time (Django start-up
included), its CPU time, its peak RSS (VmHWM polled from /proc/<pid>/status) and its
largest anonymous memory (RssAnon: without pages of memory-mapped files), and the growth
of both over a 1,000-row run of the same kind. The PostgreSQL server's own memory is not
counted. A run that passes 15 minutes is killed and reported as "over 15 min". Load
average and machine CPU use are recorded around every run, because other work may share
the machine. Exports run first, then imports by size (so that a cut-short run still has
every kind). Results go to bench/results/import_export.json and .md (rewritten after
every run, so an interrupted run keeps what finished; `--quick` writes import_export_quick).
A run that measures only some kinds (`--only`, `--skip-sqlite`, `--skip-postgres`) keeps
the other kinds' rows of the results file, each with the run that measured it.

    .venv/bin/python bench/import_export.py [--sizes 100000,1000000] [--quick]
        [--skip-sqlite] [--skip-postgres] [--budget-minutes 35] [--profile | --profile-only]

`--quick` runs 10,000 and 100,000 rows; `--profile` adds cProfile summaries of a
100,000-row import (JSONL, both databases) and a 100,000-judgment export after the
measurements (without it, the profiles of the last results are kept); `--profile-only`
re-makes just those summaries and keeps the measured runs of the last results;
`--budget-minutes` starts no run after that many minutes and stops the one running then
(reported as such, with the rows it had read).
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import common
from bulk import report as results
from bulk.data import PARQUET_ROW_GROUP, SEED, generate_files
from bulk.report import BASELINE_ROWS, EXPORT_PARTS, IMPORT_PARTS, machine_line, summarize_profile
from bulk.runs import TIMEOUT_SECONDS, Bench, export_env, export_run, export_seed, import_run, manage, not_run
from bulk.seeding import seeded
from common import PG_SERVER, RESULTS

PG_DB = "feedback_io_bench"
PROFILE_ROWS = 100_000
PG_SETTINGS = ("shared_buffers", "work_mem", "synchronous_commit", "fsync", "max_wal_size")


def describe_machine(postgres: bool) -> dict:
    machine = {
        "cpu_model": common.cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gb": common.ram_gb(),
        "kernel": common.kernel(),
        "python": platform.python_version(),
        "django": common.package_version("Django"),
        "datasets": common.package_version("datasets"),
        "pyarrow": common.package_version("pyarrow"),
        "psycopg": common.package_version("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "load_average_at_start": common.load_average(),
        "cpu_busy_fraction_at_start": common.busy_fraction(1.0),
        "top_processes_at_start": common.top_processes(5, command_line=True),
        "git_commit": common.git_commit(),
    }
    if postgres:
        version, settings = common.pg_describe(f"{PG_SERVER}/postgres", PG_SETTINGS)
        machine["postgresql"], machine["postgresql_settings"] = version.split(" on ")[0], settings
    return machine


def export_phase(bench: Bench, report: dict, sizes: list[int], backend: str, folder: Path, save) -> None:
    """Seed one database (a SQLite file in `folder`, or PostgreSQL) with a project per size, then export each.

    With --keep-db the projects a kept PostgreSQL database already holds are not seeded again
    (the SQLite file goes with the run's temp folder)."""
    postgres = backend == "postgres"
    everything = [BASELINE_ROWS, *sizes]
    reused = postgres and bench.keep_db and all(seeded(bench.pg_url, f"export-{n}", n) for n in everything)
    if postgres and not reused:
        common.pg_create(bench.pg_url, drop_first=True)
    if not reused:
        manage(export_env(bench, backend, folder), "migrate", "--verbosity", "0")
    report.setdefault("export_seeding_seconds", {})[backend] = seeding = {}
    report.setdefault("export_database_reused", {})[backend] = reused
    for rows in [] if reused else everything:
        seconds = export_seed(bench, backend, folder, f"export-{rows}", rows)
        seeding[str(rows)] = seconds
        print(f"Seeded {rows:,} judgments into {backend} in {seconds} s", flush=True)
    for rows in everything:
        if bench.past_deadline():
            report["runs"].append(not_run("export", backend, "hf", rows))
        else:
            report["runs"].append(export_run(bench, backend, f"export-{rows}", rows, folder))
        save()
    if not postgres:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{folder / 'export.sqlite3'}{suffix}").unlink(missing_ok=True)


def measure_phase(
    bench: Bench, report: dict, sizes: list[int], backends: list[str], folder: Path, save, only=""
) -> None:
    """Exports first (one seeded database each), then imports by size, so that a cut-short run still has every kind."""
    for backend in backends if only != "import" else []:
        export_phase(bench, report, sizes, backend, folder, save)
    if only == "export":
        return
    files = generate_files(folder, sorted({BASELINE_ROWS, *sizes}))
    for rows in [BASELINE_ROWS, *sizes]:
        for backend in backends:
            for fmt in ("jsonl", "parquet"):
                if bench.past_deadline():
                    report["runs"].append(not_run("import", backend, fmt, rows))
                else:
                    report["runs"].append(import_run(bench, backend, fmt, rows, files[rows][fmt], folder))
                save()
    for path in (path for pair in files.values() for path in pair.values()):
        path.unlink()


def profile_phase(bench: Bench, report: dict, backends: list[str], folder: Path, save) -> None:
    """cProfile summaries of a PROFILE_ROWS import (JSONL, each database) and export (PostgreSQL)."""
    report["profiles"] = {}
    files = generate_files(folder, [PROFILE_ROWS])
    for backend in backends:
        path = folder / f"import-{backend}.prof"
        run = import_run(bench, backend, "jsonl", PROFILE_ROWS, files[PROFILE_ROWS]["jsonl"], folder, path)
        name = f"import of {PROFILE_ROWS:,} JSONL pairs into {backend}"
        report["profiles"][name] = {**summarize_profile(path, IMPORT_PARTS), **profile_context(run)}
        save()
    if "postgres" in backends:
        common.pg_create(bench.pg_url, drop_first=True)
        manage(export_env(bench, "postgres", folder), "migrate", "--verbosity", "0")
        export_seed(bench, "postgres", folder, "export-profile", PROFILE_ROWS)
        path = folder / "export.prof"
        run = export_run(bench, "postgres", "export-profile", PROFILE_ROWS, folder, path)
        name = f"export of {PROFILE_ROWS:,} judgments (PostgreSQL)"
        report["profiles"][name] = {**summarize_profile(path, EXPORT_PARTS), **profile_context(run)}
        save()


def profile_context(run: dict) -> dict:
    return {
        "taken": time.strftime("%Y-%m-%d %H:%M"),
        "wall_seconds_under_profiler": run["seconds"],
        "load_average_before": run["load_average_before"],
    }


def previous_results(out: str) -> dict | None:
    """The results file this run rewrites, as it is now (None when there is none)."""
    with contextlib.suppress(OSError, ValueError):
        return json.loads((RESULTS / f"{out}.json").read_text())
    return None


def interrupted(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="Comma-separated row counts (default 100000,1000000)."
    )
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 rows only.")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--profile", action="store_true", help="Add cProfile summaries of 100,000-row runs.")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=0,
        help="Start no run after this many minutes and stop the one running then (default: no budget).",
    )
    parser.add_argument("--only", choices=("import", "export"), default="", help="Measure only imports or exports.")
    parser.add_argument("--db-name", default=PG_DB, help=f"PostgreSQL database to create and drop (default {PG_DB}).")
    parser.add_argument(
        "--out", default=None, help="Results file name, without .json/.md (default import_export, import_export_quick)."
    )
    parser.add_argument(
        "--stats-first",
        action="store_true",
        help="Run project_stats (untimed) before each export, so the dataset card reads current stored figures.",
    )
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="With --only export: keep --db-name at the end, and reuse the projects it already holds next time.",
    )
    parser.add_argument(
        "--profile-only",
        action="store_true",
        help="Only re-make the cProfile summaries; keep the measured runs of bench/results/import_export.json.",
    )
    args = parser.parse_args(argv)
    args.out = args.out or ("import_export_quick" if args.quick else "import_export")
    args.sizes = [10_000, 100_000] if args.quick else sorted({int(s.replace("_", "")) for s in args.sizes.split(",")})
    args.backends = [b for b, skip in (("sqlite", args.skip_sqlite), ("postgres", args.skip_postgres)) if not skip]
    return args


def new_report(args, machine: dict, started_at: str) -> dict:
    """This run's report, with the rows of the results file it does not measure again."""
    operations = [args.only] if args.only else ["import", "export"]
    previous = previous_results(args.out)
    kept, sources = results.carried_over(previous, {(op, b) for op in operations for b in args.backends})
    report = {
        "started_at": started_at,
        "machine": machine,
        "sizes": args.sizes,
        "baseline_rows": BASELINE_ROWS,
        "timeout_seconds": TIMEOUT_SECONDS,
        "seed": SEED,
        "parquet_row_group": PARQUET_ROW_GROUP,
        "budget_minutes": args.budget_minutes or None,
        "stats_first": args.stats_first,
        "status": "Running.",
        "sources": {**sources, started_at: {"machine": machine, "stats_first": args.stats_first}},
        "runs": kept,
        "targets": [],
        "profiles": (previous or {}).get("profiles", {}),
    }
    for backend in {run["backend"] for run in kept if run["operation"] == "export"}:
        for key in ("export_seeding_seconds", "export_database_reused"):
            earlier = (previous or {}).get(key)
            if isinstance(earlier, dict) and backend in earlier:
                report.setdefault(key, {})[backend] = earlier[backend]
    return report


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    signal.signal(signal.SIGTERM, interrupted)
    machine = describe_machine(postgres="postgres" in args.backends)
    print(f"Machine: {machine_line(machine)}")
    print(f"Load average {machine['load_average_at_start']}, CPU busy {machine['cpu_busy_fraction_at_start']:.0%}")
    for line in machine["top_processes_at_start"]:
        print(f"  {line}")
    if args.profile_only:
        report = json.loads((RESULTS / f"{args.out}.json").read_text())
        status = report["status"]
    else:
        report = new_report(args, machine, dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())

    def save(status: str = "Running: the figures so far.") -> None:
        for run in report["runs"]:
            run.setdefault("source", report.get("started_at"))
        results.add_growth(report["runs"])
        report["largest"] = max((run["rows"] for run in report["runs"]), default=max(report["sizes"]))
        report["targets"] = results.targets(report["runs"], report["largest"])
        report["status"] = status
        if not args.profile_only:
            report["elapsed_seconds"] = round(time.perf_counter() - started)
        common.results_write(args.out, report, results.markdown(report))

    with tempfile.TemporaryDirectory(prefix="import-export-bench-") as folder:
        bench = Bench(
            pg_url=f"{PG_SERVER}/{args.db_name}",
            scratch=Path(folder),
            deadline=started + args.budget_minutes * 60 if args.budget_minutes else None,
            stats_first=args.stats_first,
            keep_db=args.keep_db,
        )
        try:
            if args.profile_only:
                profile_phase(bench, report, args.backends, bench.scratch, lambda: save(status))
            else:
                measure_phase(bench, report, args.sizes, args.backends, bench.scratch, save, args.only)
                finished = f"Measurements finished in {(time.perf_counter() - started) / 60:.1f} minutes."
                cut = [run for run in report["runs"] if run.get("not_run") or run.get("stopped_at_budget")]
                if cut:
                    finished += (
                        f" The {args.budget_minutes:g}-minute budget cut {len(cut)} run(s) short or out;"
                        " every other run finished."
                    )
                save(finished)
                if args.profile:
                    profile_phase(bench, report, args.backends, bench.scratch, lambda: save(finished))
        except KeyboardInterrupt:
            save(
                f"Interrupted after {(time.perf_counter() - started) / 60:.1f} minutes: only the runs listed finished."
            )
            raise
        finally:
            if "postgres" in args.backends and not args.keep_db:
                common.pg_drop(bench.pg_url)
    print((RESULTS / f"{args.out}.md").read_text())


if __name__ == "__main__":
    main()
