"""What the benchmarks share: where results go, the machine and its load, CPU and memory read
from /proc, percentiles, the code measured, PostgreSQL databases of their own, and the
environment of the Django processes they start.

The scripts import it as a sibling (`import common`): Python puts a script's own folder
first on sys.path, so `python bench/<script>.py` finds it from any working directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str, *, stderr: bool = False) -> None:
    print(message, file=sys.stderr if stderr else sys.stdout, flush=True)


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded."""
    return [round(value, 2) for value in os.getloadavg()]


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_values[lo]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    """n, p50, p95, p99, mean, min and max of `values`, to three decimals."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}

    def r(x):
        return None if x is None else round(x, 3)

    return {
        "n": len(ordered),
        "p50": r(percentile(ordered, 50)),
        "p95": r(percentile(ordered, 95)),
        "p99": r(percentile(ordered, 99)),
        "mean": r(sum(ordered) / len(ordered)),
        "min": r(ordered[0]),
        "max": r(ordered[-1]),
    }


# --------------------------------------------------------------------------- the machine


def cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def ram_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def kernel() -> str:
    return platform.release()


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def top_processes(n: int = 6, *, command_line: bool = False) -> list[str]:
    """The busiest processes now (`ps`): CPU %, elapsed time and name (or command line, cut)."""
    column = "args" if command_line else "comm"
    try:
        out = subprocess.run(
            ["ps", "-eo", f"pcpu,etime,{column}", "--sort=-pcpu"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip()[:110] if command_line else line.strip() for line in out.splitlines()[1 : n + 1]]


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])  # guest time is already counted in user time
    return (total - idle) / CLK_TCK, total / CLK_TCK


def busy_fraction(seconds: float = 1.0) -> float:
    """The machine's busy share (0 to 1, all cores) over the next `seconds`."""
    b0, t0 = machine_cpu_seconds()
    time.sleep(seconds)
    b1, t1 = machine_cpu_seconds()
    return round((b1 - b0) / max(t1 - t0, 1e-9), 3)


# --------------------------------------------------------------------------- processes


def _stat_fields(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ..., utime (11), stime (12), ...]."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def proc_cpu_seconds(pid: int | str) -> float | None:
    """utime + stime of one process, in seconds (None if it is gone)."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The kB figures of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile, ...); {} if it is gone."""
    values = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith(" kB"):
                values[name] = int(rest.split()[0])
    return values


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(entry.name)[1])
    return parents


def children_of(pid: int) -> list[int]:
    return [child for child, parent in _parents().items() if parent == pid]


def descendants(pid: int) -> list[int]:
    """Live descendants of `pid` (children, their children, ...), by walking /proc once."""
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 10.0) -> None:
    """Until something accepts connections on HOST:port, or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)


# --------------------------------------------------------------------------- the code measured


def git(path: Path, *command: str) -> str:
    """`git -C path ...`'s output; raises OSError or CalledProcessError."""
    return subprocess.run(["git", "-C", str(path), *command], capture_output=True, text=True, check=True).stdout


def git_commit(path: Path = ROOT, *, dirty_note: bool = False) -> str | None:
    """The short commit of the checkout at `path`; with `dirty_note`, saying so when tracked files changed."""
    try:
        commit = git(path, "rev-parse", "--short", "HEAD").strip()
        dirty = dirty_note and git(path, "status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" (+ uncommitted changes)" if dirty else "")


def code_state(app_dir: Path) -> dict:
    """The commit served and a fingerprint of uncommitted changes to the app (labeling/, feedback/, templates/)."""
    try:
        commit = git(app_dir, "rev-parse", "--short", "HEAD").strip()
        subject = git(app_dir, "log", "-1", "--format=%s").strip()
        diff = git(app_dir, "diff", "HEAD", "--", "labeling", "feedback", "templates")
        untracked = git(app_dir, "ls-files", "--others", "--exclude-standard", "--", "labeling", "feedback")
        dirty = git(app_dir, "status", "--porcelain").strip()
    except (OSError, subprocess.CalledProcessError):
        return {"app_dir": str(app_dir), "commit": None, "uncommitted_app_changes": None}
    changed = bool(diff.strip() or untracked.strip())
    return {
        "app_dir": str(app_dir),
        "commit": commit,
        "subject": subject[:100],
        "uncommitted_app_changes": changed,
        "work_tree_dirty": bool(dirty),
        "dirty_files": dirty.splitlines()[:20],
        "fingerprint": hashlib.sha256((commit + diff + untracked).encode()).hexdigest()[:12],
    }


# --------------------------------------------------------------------------- PostgreSQL


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def db_url_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def pg_connect(url: str, autocommit: bool = True):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=autocommit)


def pg_admin(url: str):
    """A connection to the server's `postgres` database, for creating and dropping `url`'s."""
    return pg_connect(db_url_with_name(url, "postgres"))


def pg_exists(url: str) -> bool:
    with pg_admin(url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name(url),)).fetchone() is not None


def pg_create(url: str, *, drop_first: bool = False) -> None:
    from psycopg import sql

    name = sql.Identifier(db_name(url))
    with pg_admin(url) as conn:
        if drop_first:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def pg_drop(url: str) -> None:
    from psycopg import sql

    with pg_admin(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name(url))))


def pg_describe(url: str, settings: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The server's version and the current value of each setting named."""
    with pg_connect(url) as conn:
        version = conn.execute("SELECT version()").fetchone()[0]
        values = {name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in settings}
    return version, values


def backend_pids(conn, database: str | None = None) -> list[int]:
    """The PostgreSQL backends serving `database` (default: `conn`'s own), other than `conn`'s."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = coalesce(%s, current_database()) AND pid <> pg_backend_pid()",
        (database,),
    ).fetchall()
    return [row[0] for row in rows]


def backend_cpu_seconds(conn, database: str | None = None) -> dict[int, float]:
    """CPU seconds so far of each backend serving `database` (the server must run on this machine)."""
    seconds = {pid: proc_cpu_seconds(pid) for pid in backend_pids(conn, database)}
    return {pid: cpu for pid, cpu in seconds.items() if cpu is not None}


# --------------------------------------------------------------------------- Django and results


def django_env(database: dict[str, str], **settings: str) -> dict[str, str]:
    """The environment of a Django process a benchmark starts.

    This process's environment without the database it may name (exactly one way to the
    database: `database`, DATABASE_URL or SQLITE_PATH), DEBUG off, a throw-away secret key,
    no development `.env` file, then `settings`.
    """
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "SQLITE_PATH")}
    env.update(DEBUG="0", SECRET_KEY="bench", DOTENV_PATH=os.devnull)
    env.update(database)
    env.update(settings)
    return env


def results_write(stem: str, report: dict, markdown: str | None = None, *, indent: int = 2) -> Path:
    """bench/results/<stem>.json (and .md); returns the JSON file's path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(report, indent=indent, ensure_ascii=False) + "\n")
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown)
    return path
