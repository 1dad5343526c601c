"""One measured command in a process of its own, and the import and export runs built on it."""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import common
from common import ROOT

from bulk import seeding

PYTHON = sys.executable
SLUG = "bench"
TIMEOUT_SECONDS = 15 * 60


@dataclass
class Bench:
    """What every run of one benchmark invocation shares (set once from the options)."""

    pg_url: str  # the benchmark's own PostgreSQL database, created and dropped here
    scratch: Path  # the run's temp folder: Django's file cache goes there, not to var/cache
    deadline: float | None = None  # perf_counter() after which no run starts and a running one is stopped
    stats_first: bool = False  # compute and store the project's stats before each timed export (untimed)
    keep_db: bool = False  # reuse the export projects already seeded in the database, and keep it

    @property
    def pg_db(self) -> str:
        return common.db_name(self.pg_url)

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def django_env(self, *, sqlite_path: Path | None = None, database_url: str | None = None) -> dict:
        database = {"SQLITE_PATH": str(sqlite_path)} if sqlite_path is not None else {"DATABASE_URL": database_url}
        env = common.django_env(
            database, ALLOWED_HOSTS="localhost", PYTHONDONTWRITEBYTECODE="1", CACHE_DIR=str(self.scratch / "cache")
        )
        env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py's own
        return env


def manage(env: dict, *command: str) -> str:
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *command], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def measured(bench: Bench, command: list[str], env: dict, logs: Path, server_db: str | None = None) -> dict:
    """Run a command alone in a child process; its wall time, CPU time and peak RSS.

    The peak is VmHWM (the high-water mark of the process's resident memory since its
    exec) polled every 20 ms until it exits; beside it the largest RssAnon seen (anonymous
    memory: the heap, without pages of memory-mapped files such as datasets' Arrow cache,
    which the kernel can drop). wait4's ru_maxrss is not used: Linux folds
    the forking parent's pre-exec high-water mark into it, so every child would report
    at least this script's own peak.

    A large import reads its file in a parsing process, forked by multiprocessing's
    forkserver (both descendants of the command): their resident and anonymous memory
    are added to the command's at each poll (an upper bound: pages they share with the
    forkserver count twice) and their CPU time, as last seen, to its CPU time.
    """
    load = common.load_average()
    busy0, total0 = common.machine_cpu_seconds()
    stdout, stderr = logs.with_suffix(".out"), logs.with_suffix(".err")
    with stdout.open("w") as out, stderr.open("w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
    hwm = anon = 0
    timed_out = stopped = False
    server: dict[int, float] = {}  # the latest CPU reading of each backend serving `server_db` (local server only)
    helper_cpu: dict[int, float] = {}  # the latest CPU reading of each descendant of the command
    admin = common.pg_admin(bench.pg_url) if server_db else None
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if admin is not None:
                server.update(common.backend_cpu_seconds(admin, server_db))
            own = common.proc_status(process.pid)
            now_hwm, now_anon = own.get("VmHWM", 0), own.get("RssAnon", 0)
            for helper in common.descendants(process.pid):
                status_of = common.proc_status(helper)
                now_hwm += status_of.get("VmRSS", 0)
                now_anon += status_of.get("RssAnon", 0)
                cpu = common.proc_cpu_seconds(helper)
                if cpu:
                    helper_cpu[helper] = cpu
            hwm, anon = max(hwm, now_hwm), max(anon, now_anon)
            now = time.perf_counter()
            if now - started > TIMEOUT_SECONDS or bench.past_deadline():
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                timed_out = now - started > TIMEOUT_SECONDS
                stopped = not timed_out
                break
            time.sleep(0.02)
    except BaseException:  # interrupted: the child goes too
        process.kill()
        os.wait4(process.pid, 0)
        raise
    finally:
        if admin is not None:
            admin.close()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    busy1, total1 = common.machine_cpu_seconds()
    return {
        "returncode": process.returncode,
        "timed_out": timed_out,
        "stopped_at_budget": stopped,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime + sum(helper_cpu.values()), 2),
        "helper_cpu_seconds": round(sum(helper_cpu.values()), 2),
        "server_cpu_seconds": round(sum(server.values()), 2) if server_db else None,
        "peak_rss_mb": round(hwm / 1024, 1),
        "peak_anon_mb": round(anon / 1024, 1),
        "load_average_before": load,
        "machine_busy_cores": round((busy1 - busy0) / max(total1 - total0, 1e-9) * (os.cpu_count() or 1), 2),
        "stdout": stdout.read_text()[-2000:],
        "stderr": stderr.read_text()[-2000:] if process.returncode else "",
    }


# --------------------------------------------------------------------------- databases


def fresh_database(bench: Bench, backend: str, folder: Path) -> dict:
    """A new migrated database holding the empty project SLUG; the env that points at it."""
    if backend == "sqlite":
        template = folder / "template.sqlite3"
        if not template.exists():
            env = bench.django_env(sqlite_path=template)
            manage(env, "migrate", "--verbosity", "0")
            manage(env, "createproject", SLUG, "--overlap", "1")
        database = folder / "run.sqlite3"
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, database)
        return bench.django_env(sqlite_path=database)
    common.pg_create(bench.pg_url, drop_first=True)
    env = bench.django_env(database_url=bench.pg_url)
    manage(env, "migrate", "--verbosity", "0")
    manage(env, "createproject", SLUG, "--overlap", "1")
    return env


def database_size_mb(bench: Bench, backend: str, folder: Path) -> float:
    if backend == "sqlite":
        return round((folder / "run.sqlite3").stat().st_size / 2**20, 1)
    with common.pg_admin(bench.pg_url) as conn:
        return round(conn.execute("SELECT pg_database_size(%s)", (bench.pg_db,)).fetchone()[0] / 2**20, 1)


def export_env(bench: Bench, backend: str, folder: Path) -> dict:
    """The environment of the export runs: the seeded SQLite file, or the seeded PostgreSQL database."""
    if backend == "sqlite":
        return bench.django_env(sqlite_path=folder / "export.sqlite3")
    return bench.django_env(database_url=bench.pg_url)


def export_seed(bench: Bench, backend: str, folder: Path, slug: str, rows: int) -> float:
    """Project `slug` with `rows` judgments in the export database of `backend`; seconds taken."""
    manage(export_env(bench, backend, folder), "createproject", slug, "--overlap", "1")
    if backend == "postgres":
        return seeding.seed_judgments(bench.pg_url, slug, rows)
    return seeding.seed_sqlite_judgments(folder / "export.sqlite3", slug, rows)


# --------------------------------------------------------------------------- runs


def import_run(
    bench: Bench, backend: str, fmt: str, rows: int, path: Path, folder: Path, profile: Path | None = None
) -> dict:
    env = fresh_database(bench, backend, folder)
    runner = [PYTHON, "-m", "cProfile", "-o", str(profile)] if profile else [PYTHON]
    command = [*runner, str(ROOT / "manage.py"), "import_items", SLUG, str(path)]
    print(f"  import {backend:8} {fmt:7} {rows:>9,} rows  (load {os.getloadavg()[0]:.2f}) ...", end=" ", flush=True)
    server_db = bench.pg_db if backend == "postgres" else None
    run = measured(bench, command, env, folder / f"import-{backend}-{fmt}-{rows}", server_db=server_db)
    imported = re.search(r"imported (\d+) items", run["stdout"])
    run.update(operation="import", backend=backend, format=fmt, rows=rows, file_mb=round(path.stat().st_size / 2**20))
    run["imported"] = int(imported.group(1)) if imported else None
    run["ok"] = run["returncode"] == 0 and run["imported"] == rows
    progress = re.findall(r"(\d+)/\d+ \[", run["stderr"])  # tqdm's last "rows read/total"
    if not run["ok"] and progress:
        run["rows_read"] = int(progress[-1])
    if run["ok"]:
        run["rows_per_s"] = round(rows / run["seconds"])
        run["database_mb"] = database_size_mb(bench, backend, folder)
    print(describe(run), flush=True)
    return run


def export_run(bench: Bench, backend: str, slug: str, rows: int, folder: Path, profile: Path | None = None) -> dict:
    out = folder / f"export-{slug}"
    shutil.rmtree(out, ignore_errors=True)
    env = export_env(bench, backend, folder)
    if bench.stats_first:  # the dataset card then reads the stored figures (as after the dashboard's refresh)
        manage(env, "project_stats", slug)
    runner = [PYTHON, "-m", "cProfile", "-o", str(profile)] if profile else [PYTHON]
    command = [*runner, str(ROOT / "manage.py"), "export_preferences", slug, "--out", str(out)]
    print(f"  export {backend:8} hf      {rows:>9,} judgments (load {os.getloadavg()[0]:.2f}) ...", end=" ", flush=True)
    server_db = bench.pg_db if backend == "postgres" else None
    run = measured(bench, command, env, folder / f"export-{backend}-{slug}", server_db=server_db)
    found = re.search(r"train (\d+) rows from (\d+) items and (\d+) judgments", run["stdout"])
    run.update(operation="export", backend=backend, format="hf", rows=rows)
    run["exported_rows"], run["judgments"] = (int(found.group(1)), int(found.group(3))) if found else (None, None)
    run["ok"] = run["returncode"] == 0 and run["judgments"] == rows and run["exported_rows"] == rows
    if run["ok"]:
        run["judgments_per_s"] = round(rows / run["seconds"])
        run["output_mb"] = round(sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20, 1)
    shutil.rmtree(out, ignore_errors=True)
    print(describe(run), flush=True)
    return run


def outcome(run: dict) -> str | None:
    """Why a run has no figures, or None when it finished."""
    if run.get("not_run"):
        return "not run (time budget)"
    if run["timed_out"]:
        return "over 15 min (killed)"
    if run.get("stopped_at_budget"):
        read = f", {run['rows_read']:,} rows read" if run.get("rows_read") else ""
        return f"stopped at the time budget after {run['seconds']:.0f} s{read}"
    if not run["ok"]:
        return f"failed (exit {run['returncode']})"
    return None


def not_run(operation: str, backend: str, fmt: str, rows: int) -> dict:
    print(f"  {operation} {backend} {fmt} {rows:,}: not run (time budget)", flush=True)
    return {"operation": operation, "backend": backend, "format": fmt, "rows": rows, "ok": False, "not_run": True}


def describe(run: dict) -> str:
    if outcome(run):
        return outcome(run) + (f": {run['stderr'][-300:]}" if run.get("returncode", 0) > 0 else "")
    rate = run.get("rows_per_s") or run.get("judgments_per_s")
    server = run.get("server_cpu_seconds")
    server = f" (+{server:.1f} s server)" if server is not None else ""
    memory = f"peak RSS {run['peak_rss_mb']:,.0f} MB"
    return f"{run['seconds']:.1f} s, {rate:,}/s, {memory}, cpu {run['cpu_seconds']:.1f} s{server}"
