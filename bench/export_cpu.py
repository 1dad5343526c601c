"""One export's CPU seconds in the client and in PostgreSQL, on a database seeded once.

`import_export.py --only export --keep-db --db-name NAME` seeds the export projects once and keeps
them; this runs `manage.py export_preferences SLUG --out DIR` from a source tree (this one, or
another worktree, so that two versions of the code can be run alternately on the same data) and
reports its wall time, its CPU time (user + system, from wait4), its peak RSS and anonymous
memory (polled from /proc), and the CPU time of the PostgreSQL backends serving it (their
/proc/<pid>/stat, polled every 50 ms through pg_stat_activity: the last 50 ms of a backend may be
missed). The load average before each run is recorded, because other work may share the machine.

    .venv/bin/python bench/import_export.py --only export --skip-sqlite --keep-db --db-name export_cpu_bench \\
        --sizes 1000000 --stats-first --out import_export_quick        # seed once (about 4 minutes), keep
    .venv/bin/python bench/export_cpu.py --db-name export_cpu_bench --tree /path/to/other/checkout --tree . --runs 3

Runs the trees alternately, `--runs` times each, and writes bench/results/<out>.json (default export_cpu).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import PG_SERVER, ROOT


def run(tree: Path, database: str, slug: str, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = common.django_env(
        {"DATABASE_URL": f"{PG_SERVER}/{database}"}, ALLOWED_HOSTS="localhost", PYTHONDONTWRITEBYTECODE="1"
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py's own
    load = os.getloadavg()[0]
    command = [sys.executable, "manage.py", "export_preferences", slug, "--out", str(out)]
    backends: dict[int, float] = {}
    hwm = anon = 0
    with common.pg_connect(f"{PG_SERVER}/postgres") as admin:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            backends.update(common.backend_cpu_seconds(admin, database))  # new backends per command: CPU from 0
            status_now = common.proc_status(process.pid)
            hwm, anon = max(hwm, status_now.get("VmHWM", 0)), max(anon, status_now.get("RssAnon", 0))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    stdout, stderr = (stream.read().decode() for stream in (process.stdout, process.stderr))
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file()) if out.exists() else 0
    shutil.rmtree(out, ignore_errors=True)
    return {
        "tree": str(tree),
        "commit": common.git_commit(tree),
        "load_average_before": round(load, 2),
        "returncode": os.waitstatus_to_exitcode(status),
        "seconds": round(seconds, 2),
        "client_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "client_user_seconds": round(usage.ru_utime, 2),
        "client_system_seconds": round(usage.ru_stime, 2),
        "postgres_cpu_seconds": round(sum(backends.values()), 2),
        "postgres_backends": len(backends),
        "peak_rss_mb": round(hwm / 1024),
        "peak_anon_mb": round(anon / 1024),
        "output_mb": round(size / 2**20),
        "stdout": stdout.strip()[-300:],
        "stderr": stderr[-2000:] if process.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-name", required=True)
    parser.add_argument("--slug", default="export-1000000")
    parser.add_argument("--tree", action="append", type=Path, help="A source tree to run (repeat to alternate).")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", default="export_cpu", help="bench/results/<out>.json (default export_cpu)")
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.tree or [ROOT]]
    runs = []
    with tempfile.TemporaryDirectory(prefix="export-cpu-") as folder:
        for index in range(args.runs):
            for tree in trees:
                found = run(tree, args.db_name, args.slug, Path(folder) / "out")
                runs.append({"run": index + 1, **found})
                print(json.dumps({key: value for key, value in found.items() if key != "stdout"}), flush=True)
    result = {"taken": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "slug": args.slug, "runs": runs}
    common.results_write(args.out, result, indent=1)


if __name__ == "__main__":
    main()
