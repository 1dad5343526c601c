#!/usr/bin/env python
"""Latency and load benchmark of the annotation HTTP API: `next` + `submit` round trips.

What it does, end to end:

1. creates its own PostgreSQL database (`feedback_bench` by default), runs `manage.py
   migrate` on it and seeds one project per requested size with SQL (`generate_series`):
   items with one user turn and two responses each, overlap (target) 1, so every round
   trip is on a fresh item; annotators (users + memberships + API tokens) through Django;
2. starts `gunicorn feedback.wsgi` (sync workers) on 127.0.0.1 and a free port;
3. for each project size and each concurrency: resets the project (no assignments, no
   judgments, all items open, VACUUM ANALYZE), runs a warm-up, then simulated annotators
   (one OS process each: no GIL between them) loop on
   POST /api/projects/{slug}/next -> POST /api/assignments/{id}/judgment, a NEW TCP
   connection per request, until a round-trip budget or a time budget is spent;
4. reports p50/p95/p99 of the round trip, of `next` and of `submit`, round trips per
   second, and where the CPU went (client, gunicorn, PostgreSQL, everything else);
5. profiles the same round trip in-process (Django test client, same database): SQL
   queries per request and their time, Python time, cProfile top functions, EXPLAIN of
   the claim queries;
6. prints all this with a description of the machine and writes
   bench/results/api_latency.json and bench/results/api_latency.md (plus
   api_latency_profile.md). `--quick` writes api_latency_quick.* instead.

The load generator runs on the same machine as gunicorn and PostgreSQL, so it competes
with them for the cores; its own CPU use is measured and reported.

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python bench/api_latency.py            # full: 10k and 1M items, 1/8/32 annotators
    .venv/bin/python bench/api_latency.py --quick    # smoke check: 10k items, 1 and 8 annotators
    .venv/bin/python bench/api_latency.py --reuse    # keep an already-seeded database
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/feedback_bench"
HOST = "127.0.0.1"
ANNOTATOR_PREFIX = "bench-annotator-"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets from the issue (this 2-core machine).
TARGET_P50_ONE_ANNOTATOR_MS = 8.5
TARGET_P99_32_ANNOTATORS_MS = 50.0
TARGET_SCALE_RATIO = 1.5

PROMPT_TEXT = (
    "Explain, in a short paragraph, how a hash map resolves collisions and what that means "
    "for lookup time when the table gets full."
)
RESPONSE_TEXT = (
    "A hash map stores each key in a bucket chosen by its hash. When two keys land in the same "
    "bucket the map either chains them in a small list or probes for the next free slot. Lookups "
    "stay close to constant time while the load factor is low; as the table fills, chains grow "
    "and probes get longer, so the map resizes and rehashes to keep them short."
)


# --------------------------------------------------------------------------- helpers


def log(message: str) -> None:
    print(message, flush=True)


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def db_url_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def pg_connect(url: str, autocommit: bool = True):
    import psycopg

    conninfo = url.replace("postgres://", "postgresql://", 1)
    return psycopg.connect(conninfo, autocommit=autocommit)


def django_env(args) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": HOST,
            "DATABASE_URL": args.db_url,
            "DB_CONN_MAX_AGE": str(args.conn_max_age),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "feedback.settings",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process, in seconds (None if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def children_of(pid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            pids.append(int(entry.name))
    return pids


def busy_fraction(seconds: float = 1.0) -> float:
    b0, t0 = machine_cpu_seconds()
    time.sleep(seconds)
    b1, t1 = machine_cpu_seconds()
    return round((b1 - b0) / max(t1 - t0, 1e-9), 3)


def top_processes(n: int = 6) -> list[str]:
    try:
        out = subprocess.run(
            ["ps", "-eo", "pcpu,etime,comm", "--sort=-pcpu"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip() for line in out.splitlines()[1 : n + 1]]


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def code_state() -> dict:
    """The commit under test and a fingerprint of uncommitted changes to the app (labeling/, feedback/)."""
    import hashlib

    def git(*command):
        return subprocess.run(["git", "-C", str(ROOT), *command], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        diff = git("diff", "HEAD", "--", "labeling", "feedback", "templates")
        untracked = git("ls-files", "--others", "--exclude-standard", "--", "labeling", "feedback")
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "uncommitted_app_changes": None}
    changed = bool(diff.strip() or untracked.strip())
    return {
        "commit": commit,
        "uncommitted_app_changes": changed,
        "fingerprint": hashlib.sha256((commit + diff + untracked).encode()).hexdigest()[:12],
    }


def describe_machine(args) -> dict:
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    with pg_connect(db_url_with_name(args.db_url, "postgres")) as conn:
        pg_version = conn.execute("SELECT version()").fetchone()[0]
        pg_settings = {
            name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
            for name in ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "work_mem")
        }
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gb": mem_total_gb,
        "kernel": platform.release(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpu_busy_fraction_at_start": busy_fraction(1.0),
        "top_processes_at_start": top_processes(),
        "python": platform.python_version(),
        "django": package_version("Django"),
        "gunicorn": package_version("gunicorn"),
        "psycopg": package_version("psycopg"),
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "git_commit": commit,
    }


# --------------------------------------------------------------------------- database


def database_exists(args) -> bool:
    with pg_connect(db_url_with_name(args.db_url, "postgres")) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name(args.db_url),)).fetchone() is not None
        )


def database_create(args, drop_first: bool) -> None:
    from psycopg import sql

    name = sql.Identifier(db_name(args.db_url))
    with pg_connect(db_url_with_name(args.db_url, "postgres")) as conn:
        if drop_first:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def database_drop(args) -> None:
    from psycopg import sql

    with pg_connect(db_url_with_name(args.db_url, "postgres")) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name(args.db_url))))


def manage(args, *command: str, capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *command],
        cwd=ROOT,
        env=django_env(args),
        capture_output=capture,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout or ""


def slug_for(items: int) -> str:
    return f"bench-{items}"


def project_state(conn, slug: str) -> tuple[int | None, int, int]:
    row = conn.execute("SELECT id FROM labeling_project WHERE slug = %s", (slug,)).fetchone()
    if row is None:
        return None, 0, 0
    project_id = row[0]
    items = conn.execute("SELECT count(*) FROM labeling_item WHERE project_id = %s", (project_id,)).fetchone()[0]
    responses = conn.execute(
        "SELECT count(*) FROM labeling_response r JOIN labeling_item i ON i.id = r.item_id WHERE i.project_id = %s",
        (project_id,),
    ).fetchone()[0]
    return project_id, items, responses


ITEM_COLUMNS = {
    "id",
    "project_id",
    "external_id",
    "prompt",
    "metadata",
    "reference",
    "is_gold",
    "gold_answer",
    "priority",
    "target",
    "votes",
    "filled",
    "is_complete",
    "created_at",
}
RESPONSE_COLUMNS = {"id", "item_id", "position", "model", "content", "metadata"}


def check_columns(conn) -> None:
    """Fail clearly if the schema gained a NOT NULL column without default that the SQL seeding does not fill."""
    for table, known in (("labeling_item", ITEM_COLUMNS), ("labeling_response", RESPONSE_COLUMNS)):
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
            (table,),
        ).fetchall()
        missing = sorted({row[0] for row in rows} - known)
        if missing:
            raise SystemExit(
                f"{table} has NOT NULL columns the benchmark does not seed: {missing}; update seed_project()."
            )


def seed_project(conn, project_id: int, items: int, chunk: int = 250_000) -> float:
    """Insert the project's items and two responses per item with SQL; returns seconds."""
    started = time.perf_counter()
    conn.execute("SET synchronous_commit = off")
    for low in range(1, items + 1, chunk):
        high = min(low + chunk - 1, items)
        with conn.transaction():
            conn.execute(
                """
                WITH new_items AS (
                    INSERT INTO labeling_item
                        (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                         priority, target, votes, filled, is_complete, created_at)
                    SELECT %(project)s, 'item-' || g,
                           jsonb_build_array(
                               jsonb_build_object('role', 'user', 'content', 'Q' || g || '. ' || %(prompt)s)
                           ),
                           '{}'::jsonb, NULL, false, NULL, 0, 1, 0, 0, false, now()
                    FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g
                    ORDER BY g
                    RETURNING id, external_id
                )
                INSERT INTO labeling_response (item_id, position, model, content, metadata)
                SELECT i.id, p.pos, 'model-' || (p.pos + 1),
                       'Answer ' || (p.pos + 1) || ' to ' || i.external_id || '. ' || %(text)s, '{}'::jsonb
                FROM new_items AS i CROSS JOIN (VALUES (0), (1)) AS p(pos)
                ORDER BY i.id, p.pos
                """,
                {"project": project_id, "prompt": PROMPT_TEXT, "text": RESPONSE_TEXT, "low": low, "high": high},
            )
        log(f"    {high:>9,} / {items:,} items ({time.perf_counter() - started:5.1f} s)")
    return time.perf_counter() - started


def setup_database(args) -> dict:
    """Create (or reuse), migrate and seed; returns facts about the seeding."""
    exists = database_exists(args)
    if exists and args.reuse:
        log(f"== reusing database {db_name(args.db_url)}")
    else:
        log(f"== {'re' if exists else ''}creating database {db_name(args.db_url)}")
        database_create(args, drop_first=exists)
    log("== manage.py migrate")
    manage(args, "migrate", "--noinput", capture=True)
    seeding = {}
    run_django_snippet(args, PROJECTS_SNIPPET, {"slugs": [slug_for(n) for n in args.items]})
    with pg_connect(args.db_url) as conn:
        check_columns(conn)
        for items in args.items:
            slug = slug_for(items)
            project_id, have_items, have_responses = project_state(conn, slug)
            if have_items == items and have_responses == 2 * items:
                log(f"== project {slug}: {items:,} items already seeded")
                seeding[slug] = {"items": items, "seeded_now": False}
                continue
            if have_items:
                raise SystemExit(
                    f"Project {slug} has {have_items:,} items and {have_responses:,} responses, "
                    f"not {items:,} and {2 * items:,}: run without --reuse to start from a fresh database."
                )
            log(f"== seeding project {slug}: {items:,} items, 2 responses each (SQL generate_series)")
            seconds = seed_project(conn, project_id, items)
            seeding[slug] = {"items": items, "seeded_now": True, "seconds": round(seconds, 1)}
        log("== VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    return seeding


PROJECTS_SNIPPET = """
from labeling.services.projects import project_create
from labeling.models import Project

for slug in ARGS["slugs"]:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project = project_create(slug=slug, title="Benchmark " + slug, overlap=1)
    assert project.overlap == 1 and not project.gold_rate and project.min_votes is None, project
RESULT = {}
"""

ANNOTATORS_SNIPPET = """
from django.contrib.auth import get_user_model
from labeling.models import ApiToken, Membership, Project
from labeling.services.projects import token_create

User = get_user_model()
projects = list(Project.objects.filter(slug__in=ARGS["slugs"]))
RESULT = {}
for index in range(ARGS["count"]):
    name = f"{ARGS['prefix']}{index:02d}"
    user = User.objects.filter(username=name).first() or User.objects.create_user(name)
    for project in projects:
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": "annotator"})
    ApiToken.objects.filter(user=user).delete()
    RESULT[name] = token_create(username=name, name="bench")[1]
"""

RUNNER = (
    "import json, sys, django; django.setup(); "
    "namespace = {'ARGS': json.loads(sys.argv[1])}; exec(sys.stdin.read(), namespace); "
    "print('BENCH_RESULT=' + json.dumps(namespace['RESULT']))"
)


def run_django_snippet(args, snippet: str, arguments: dict):
    """Run Django code (the app's own services and models) against the benchmark database."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(arguments)],
        cwd=ROOT,
        env=django_env(args),
        input=snippet,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"Django snippet failed:\n{result.stdout}\n{result.stderr}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH_RESULT="))
    return json.loads(line.split("=", 1)[1])


def create_annotators(args, count: int) -> list[str]:
    """Users (create_user), memberships and fresh API tokens, through Django; returns the tokens."""
    arguments = {"count": count, "prefix": ANNOTATOR_PREFIX, "slugs": [slug_for(n) for n in args.items]}
    tokens = run_django_snippet(args, ANNOTATORS_SNIPPET, arguments)
    return [tokens[name] for name in sorted(tokens)]


def reset_project(args, slug: str) -> None:
    """No assignments, no judgments, every item open again; then VACUUM ANALYZE the touched tables."""
    with pg_connect(args.db_url) as conn:
        project_id = conn.execute("SELECT id FROM labeling_project WHERE slug = %s", (slug,)).fetchone()[0]
        with conn.transaction():
            conn.execute(
                "UPDATE labeling_item SET votes = 0, filled = 0, is_complete = false "
                "WHERE id IN (SELECT item_id FROM labeling_assignment WHERE project_id = %s)",
                (project_id,),
            )
            if conn.execute("SELECT to_regclass('labeling_judgmentrevision')").fetchone()[0]:
                conn.execute(
                    "DELETE FROM labeling_judgmentrevision WHERE judgment_id IN "
                    "(SELECT id FROM labeling_judgment WHERE project_id = %s)",
                    (project_id,),
                )
            conn.execute("DELETE FROM labeling_judgment WHERE project_id = %s", (project_id,))
            conn.execute("DELETE FROM labeling_assignment WHERE project_id = %s", (project_id,))
        for table in ("labeling_item", "labeling_assignment", "labeling_judgment"):
            conn.execute("VACUUM ANALYZE " + table)


class BackendRenicer:
    """With --nice, keeps the PostgreSQL backends serving the benchmark database at that priority.

    Backends come and go (DB_CONN_MAX_AGE), so they are looked up and reniced every half second.
    """

    def __init__(self, args):
        import threading

        self.args = args
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        if self.args.nice:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def run(self):
        with pg_connect(self.args.db_url) as conn:
            while not self.stop_event.is_set():
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                for (pid,) in rows:
                    with contextlib.suppress(OSError):
                        if os.getpriority(os.PRIO_PROCESS, pid) != self.args.nice:
                            os.setpriority(os.PRIO_PROCESS, pid, self.args.nice)
                self.stop_event.wait(0.5)


def backend_pids(args) -> list[int]:
    with pg_connect(args.db_url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- gunicorn


class Gunicorn:
    def __init__(self, args):
        self.args = args
        self.port = free_port()
        self.log_file = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        # One line per request: the client's X-Bench-Id and the time gunicorn spent on it
        # (from reading the request to the last byte written, in microseconds).
        self.access_log = tempfile.NamedTemporaryFile(prefix="bench-access-", suffix=".log", delete=False)  # noqa: SIM115
        self.command = [
            sys.executable,
            "-m",
            "gunicorn",
            "feedback.wsgi",
            "--workers",
            str(args.workers),
            "--bind",
            f"{HOST}:{self.port}",
            "--error-logfile",
            "-",
            "--log-level",
            "warning",
            "--access-logfile",
            self.access_log.name,
            "--access-logformat",
            "%({x-bench-id}i)s %(D)s",
        ]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=django_env(self.args), stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = http_post(self.port, "/api/projects/none/next", None, b"")
                if status == 401 and len(self.worker_pids()) >= self.args.workers:
                    return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within 60 s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        pids = [self.process.pid, *self.worker_pids()] if self.process else []
        return sum(cpu for cpu in (proc_cpu_seconds(pid) for pid in pids) if cpu is not None)

    def server_microseconds(self) -> dict[str, int]:
        """Request id -> microseconds gunicorn spent on it, for every request logged so far."""
        times = {}
        with contextlib.suppress(OSError), open(self.access_log.name) as log_lines:
            for line in log_lines:
                request_id, _, micros = line.rstrip().rpartition(" ")
                if request_id != "-" and micros.isdigit():
                    times[request_id] = int(micros)
        return times

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(Path(self.log_file.name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            for file in (self.log_file, self.access_log):
                file.close()
                with contextlib.suppress(OSError):
                    os.unlink(file.name)

    def _stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        workers = self.worker_pids()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            for pid in workers:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)


# --------------------------------------------------------------------------- load generator


def http_post(
    port: int, path: str, token: str | None, body: bytes, request_id: str | None = None
) -> tuple[int, bytes, float]:
    """One POST on a NEW TCP connection (Connection: close); returns status, body, seconds."""
    headers = {"Connection": "close", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if request_id:
        headers["X-Bench-Id"] = request_id  # joins the client's time to gunicorn's access log
    started = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        status = response.status
    finally:
        conn.close()
    return status, data, time.perf_counter() - started


def round_trip(port: int, slug: str, token: str, request_id: str = "") -> dict:
    """next + submit; times in ms. `outcome`: ok, drained (204) or error."""
    started = time.perf_counter()
    status, body, next_s = http_post(port, f"/api/projects/{slug}/next", token, b"", request_id and f"{request_id}n")
    if status == 204:
        return {"outcome": "drained", "next_ms": next_s * 1000}
    if status != 200:
        return {"outcome": "error", "where": "next", "status": status, "body": body[:200].decode(errors="replace")}
    data = json.loads(body)
    ranking = [[response["id"]] for response in data["item"]["responses"]]
    payload = json.dumps({"ranking": ranking}).encode()
    status, body, submit_s = http_post(
        port, f"/api/assignments/{data['assignment']}/judgment", token, payload, request_id and f"{request_id}s"
    )
    ended = time.perf_counter()
    if status != 201:
        return {"outcome": "error", "where": "submit", "status": status, "body": body[:200].decode(errors="replace")}
    return {
        "outcome": "ok",
        "next_ms": next_s * 1000,
        "submit_ms": submit_s * 1000,
        "round_trip_ms": (ended - started) * 1000,
        "end": time.monotonic(),
    }


def annotator_process(port, slug, token, warmup, max_round_trips, duration, think_ms, barrier, counter, queue):
    """One simulated annotator (its own process): warm up, wait for the others, then loop.

    With think_ms > 0 it pauses 0.5x to 1.5x that long after each round trip (a reader), and
    starts at a random point of its first pause: readers do not all click at the same instant,
    whereas releasing them together from the barrier would measure one burst of 32 requests.
    """
    import random

    records, errors, drained = [], [], 0
    try:
        for _ in range(warmup):
            result = round_trip(port, slug, token)
            if result["outcome"] == "error":
                errors.append({**result, "warmup": True})
        barrier.wait(timeout=300)
        if think_ms:
            time.sleep(think_ms * random.uniform(0.0, 1.0) / 1000)
        start = time.monotonic()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        deadline = start + duration
        while time.monotonic() < deadline:
            with counter.get_lock():
                if counter.value >= max_round_trips:
                    break
                counter.value += 1
            request_id = f"{os.getpid()}-{len(records) + len(errors)}"
            result = round_trip(port, slug, token, request_id)
            if result["outcome"] == "ok":
                records.append(
                    (result["next_ms"], result["submit_ms"], result["round_trip_ms"], result["end"], request_id)
                )
            elif result["outcome"] == "drained":
                drained += 1
                break
            else:
                errors.append(result)
            if think_ms:
                time.sleep(think_ms * random.uniform(0.5, 1.5) / 1000)
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        queue.put({"records": records, "errors": errors, "drained": drained, "start": start, "cpu_s": cpu})
    except Exception as error:  # reported to the parent, which fails the configuration
        queue.put({"records": records, "errors": [*errors, {"outcome": "crash", "error": repr(error)}], "crash": True})


def run_configuration(
    args, server: Gunicorn, slug: str, items: int, concurrency: int, think_ms: float, tokens: list[str]
) -> dict:
    ctx = mp.get_context("spawn")
    reset_project(args, slug)
    busy_before = wait_until_idle(args)
    warmup_each = max(1, math.ceil(args.warmup / concurrency))
    barrier = ctx.Barrier(concurrency + 1)
    counter = ctx.Value("i", 0)
    queue = ctx.Queue()
    load_before = [round(x, 2) for x in os.getloadavg()]
    processes = [
        ctx.Process(
            target=annotator_process,
            args=(
                server.port,
                slug,
                tokens[i],
                warmup_each,
                args.round_trips,
                args.duration,
                think_ms,
                barrier,
                counter,
                queue,
            ),
            daemon=True,
        )
        for i in range(concurrency)
    ]
    results = []
    try:
        for process in processes:
            process.start()
        pids_before = backend_pids(args)
        barrier.wait(timeout=600)
        # The measured phase starts now: CPU snapshots.
        start = time.monotonic()
        machine0 = machine_cpu_seconds()
        gunicorn0 = server.cpu_seconds()
        pg0 = {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids_before}
        for _ in processes:
            results.append(queue.get(timeout=args.duration + 600))
        machine1 = machine_cpu_seconds()
        gunicorn1 = server.cpu_seconds()
        pids_after = backend_pids(args)
        pg1 = {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids_after}
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    records = [record for result in results for record in result["records"]]
    errors = [error for result in results for error in result["errors"]]
    if any(result.get("crash") for result in results):
        raise SystemExit(f"an annotator process crashed: {errors[-1]}")
    end = max((record[3] for record in records), default=start)
    wall = max(end - start, 1e-9)
    busy = machine1[0] - machine0[0]
    client_cpu = sum(result["cpu_s"] for result in results)
    gunicorn_cpu = gunicorn1 - gunicorn0
    pg_cpu = sum(max(cpu - pg0.get(pid, 0.0), 0.0) for pid, cpu in pg1.items())
    n = max(len(records), 1)
    served = server.server_microseconds()
    server_next = [served[r[4] + "n"] / 1000 for r in records if r[4] + "n" in served]
    server_submit = [served[r[4] + "s"] / 1000 for r in records if r[4] + "s" in served]
    return {
        "items": items,
        "project": slug,
        "concurrency": concurrency,
        "think_ms": think_ms,
        "workers": args.workers,
        "round_trips": len(records),
        "warmup_round_trips": warmup_each * concurrency,
        "wall_seconds": round(wall, 3),
        "round_trips_per_second": round(len(records) / wall, 1),
        "requests_per_second": round(2 * len(records) / wall, 1),
        "round_trip_ms": summary([record[2] for record in records]),
        "next_ms": summary([record[0] for record in records]),
        "submit_ms": summary([record[1] for record in records]),
        "server_next_ms": summary(server_next),
        "server_submit_ms": summary(server_submit),
        "errors": len(errors),
        "error_samples": errors[:5],
        "drained": sum(result["drained"] for result in results),
        "load_average_before": load_before,
        "machine_busy_before": busy_before,
        "cpu": {
            "machine_busy_cores": round(busy / wall, 2),
            "client_cores": round(client_cpu / wall, 2),
            "gunicorn_cores": round(gunicorn_cpu / wall, 2),
            "postgres_backends_cores": round(pg_cpu / wall, 2),
            "other_cores": round(max(busy - client_cpu - gunicorn_cpu - pg_cpu, 0.0) / wall, 2),
            "client_ms_per_round_trip": round(client_cpu * 1000 / n, 2),
            "gunicorn_ms_per_round_trip": round(gunicorn_cpu * 1000 / n, 2),
            "postgres_ms_per_round_trip": round(pg_cpu * 1000 / n, 2),
        },
    }


def wait_until_idle(args) -> float:
    """The machine's busy share over one second; with --wait-idle, wait (bounded) until it is below it."""
    busy = busy_fraction(1.0)
    if args.wait_idle is None:
        return busy
    deadline = time.monotonic() + args.wait_max
    while busy > args.wait_idle and time.monotonic() < deadline:
        log(f"   machine {busy:.0%} busy (others' work), waiting for < {args.wait_idle:.0%} ...")
        time.sleep(4)
        busy = busy_fraction(1.0)
    return busy


def baseline(server: Gunicorn, count: int) -> dict:
    """Floor: an unauthenticated POST answered 401 by django-ninja before any SQL, new connection each."""
    for _ in range(40):  # every worker imports the URLconf and the API on its first requests
        http_post(server.port, "/api/projects/none/next", None, b"")
    times = []
    for _ in range(count):
        status, _, seconds = http_post(server.port, "/api/projects/none/next", None, b"")
        if status == 401:
            times.append(seconds * 1000)
    return {"what": "POST /api/projects/none/next without a token -> 401 (no SQL)", "ms": summary(times)}


# --------------------------------------------------------------------------- in-process profile


def profile_child(slug: str, token: str, rounds: int, profiled: int, out: str) -> None:
    """Runs inside a subprocess with the Django environment: where the time of one request goes.

    Times each phase of the two views (auth, access check, service, serialization) by
    wrapping the functions labeling.api calls, every SQL statement (execute_wrapper) and
    every transaction command psycopg sends (BEGIN/COMMIT); the rest of a request is
    Django + django-ninja + middleware. Then one cProfile pass and EXPLAIN of a claim.
    """
    import cProfile
    import io
    import pstats

    import django

    django.setup()
    import psycopg
    from django.db import connection, transaction
    from django.test import Client

    import labeling.api as api_module

    state = {"sql_ms": 0.0, "commands": [], "queries": [], "phases": {}}

    def record_sql(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            state["sql_ms"] += elapsed
            state["queries"].append((sql, params, elapsed))

    original_exec_command = psycopg.Connection._exec_command

    def exec_command(self, command, *a, **k):
        state["commands"].append(command.decode() if isinstance(command, bytes) else str(command))
        return original_exec_command(self, command, *a, **k)

    psycopg.Connection._exec_command = exec_command
    original_wait = psycopg.Connection.wait

    def timed_wait(self, gen, *a, **k):
        # Commands (BEGIN/COMMIT) and queries both end up here; queries are timed by record_sql.
        started = time.perf_counter()
        try:
            return original_wait(self, gen, *a, **k)
        finally:
            state.setdefault("wait_ms", 0.0)
            state["wait_ms"] += (time.perf_counter() - started) * 1000

    psycopg.Connection.wait = timed_wait

    def phase(name, function):
        def wrapper(*a, **k):
            started, sql_before = time.perf_counter(), state["sql_ms"]
            try:
                return function(*a, **k)
            finally:
                total = (time.perf_counter() - started) * 1000
                entry = state["phases"].setdefault(name, [0.0, 0.0])
                entry[0] += total
                entry[1] += state["sql_ms"] - sql_before

        return wrapper

    for label, name in (
        ("auth: token_user", "token_user"),
        ("access: project_for_user", "project_for_user"),
        ("access: assignment_for_user", "assignment_for_user"),
        ("service: assignment_next", "assignment_next"),
        ("service: judgment_submit", "judgment_submit"),
        ("serialize: _assignment_out", "_assignment_out"),
    ):
        if not hasattr(api_module, name):
            raise SystemExit(f"labeling.api has no {name}: update the profile's phases")
        setattr(api_module, name, phase(label, getattr(api_module, name)))
    # Inside assignment_next (their time is part of it, not added to the total again).
    import labeling.services.assignment as assignment_module

    nested = {}
    for name in ("leases_expire", "_claim_window", "_claim_item"):
        if hasattr(assignment_module, name):
            label = f"service: assignment_next > {name}"
            nested[label] = True
            setattr(assignment_module, name, phase(label, getattr(assignment_module, name)))

    client = Client(HTTP_HOST=HOST, headers={"Authorization": f"Bearer {token}"})
    anonymous = Client(HTTP_HOST=HOST)

    def request(kind, call):
        state.update(sql_ms=0.0, commands=[], queries=[], phases={}, wait_ms=0.0)
        started = time.perf_counter()
        with connection.execute_wrapper(record_sql):
            response = call()
        total = (time.perf_counter() - started) * 1000
        return response, {
            "kind": kind,
            "total_ms": total,
            "sql_ms": state["sql_ms"],
            "db_wait_ms": state["wait_ms"],
            "queries": list(state["queries"]),
            "commands": list(state["commands"]),
            "phases": dict(state["phases"]),
        }

    def one_round():
        response, next_sample = request("next", lambda: client.post(f"/api/projects/{slug}/next"))
        assert response.status_code == 200, response.content
        data = response.json()
        body = json.dumps({"ranking": [[r["id"]] for r in data["item"]["responses"]]})
        response, submit_sample = request(
            "submit",
            lambda: client.post(
                f"/api/assignments/{data['assignment']}/judgment", data=body, content_type="application/json"
            ),
        )
        assert response.status_code == 201, response.content
        return next_sample, submit_sample

    for _ in range(20):
        one_round()
    samples = [one_round() for _ in range(rounds)]
    floor = [request("401", lambda: anonymous.post("/api/projects/none/next"))[1]["total_ms"] for _ in range(rounds)]

    def p50(values):
        return round(percentile(sorted(values), 50), 3)

    def per_request(index: int) -> dict:
        chosen = [pair[index] for pair in samples]
        by_sql: dict[str, list[float]] = {}
        for sample in chosen:
            for sql, _, ms in sample["queries"]:
                by_sql.setdefault(sql, []).append(ms)
        names = [name for name in chosen[-1]["phases"] if name not in nested]
        for label in reversed(list(nested)):
            if any(label in sample["phases"] for sample in chosen):
                parent = label.split(" > ")[0]
                names.insert(names.index(parent) + 1 if parent in names else len(names), label)
        phases = {
            name: {
                "total_ms_p50": p50([s["phases"].get(name, [0.0, 0.0])[0] for s in chosen]),
                "sql_ms_p50": p50([s["phases"].get(name, [0.0, 0.0])[1] for s in chosen]),
            }
            for name in names
        }
        rest = [s["total_ms"] - sum(v[0] for k, v in s["phases"].items() if k not in nested) for s in chosen]
        phases["django + ninja + middleware (rest)"] = {"total_ms_p50": p50(rest), "sql_ms_p50": 0.0}
        return {
            "in_process_ms": summary([s["total_ms"] for s in chosen]),
            "sql_execute_ms": summary([s["sql_ms"] for s in chosen]),
            "db_wait_ms_p50": p50([s["db_wait_ms"] for s in chosen]),
            "python_ms_p50": p50([s["total_ms"] - s["db_wait_ms"] for s in chosen]),
            "queries_per_request": round(sum(len(s["queries"]) for s in chosen) / len(chosen), 2),
            "commands": chosen[-1]["commands"],
            "db_round_trips_per_request": round(
                sum(len(s["queries"]) + len(s["commands"]) for s in chosen) / len(chosen), 2
            ),
            "phases": phases,
            "queries": [
                {
                    "sql": sql,
                    "per_request": round(len(ms) / len(chosen), 2),
                    "mean_ms": round(sum(ms) / len(ms), 3),
                    "p50_ms": p50(ms),
                }
                for sql, ms in by_sql.items()
            ],
        }

    result = {
        "slug": slug,
        "rounds": rounds,
        "next": per_request(0),
        "submit": per_request(1),
        "floor_401_in_process_ms": summary(floor),
    }

    # EXPLAIN ANALYZE the SELECTs (and the claim's WITH ... UPDATE) of one `next`, in a transaction rolled back.
    plans = []
    next_sample, _ = one_round()
    for sql, params, _ in next_sample["queries"]:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING ON) " + sql, params)
            plans.append({"sql": sql, "plan": "\n".join(row[0] for row in cursor.fetchall())})
            transaction.set_rollback(True)
    result["explain_next"] = plans

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(profiled):
        one_round()
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(25)
    buffer.write("\n\n")
    stats.sort_stats("cumulative").print_stats(45)
    result["cprofile_round_trips"] = profiled
    result["cprofile"] = buffer.getvalue().replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
    Path(out).write_text(json.dumps(result))


def run_profile(args, slug: str, token: str) -> dict:
    reset_project(args, slug)
    wait_until_idle(args)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        completed = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--profile-child",
                slug,
                "--profile-token",
                token,
                "--profile-out",
                out,
                "--profile-rounds",
                str(args.profile_rounds),
            ],
            cwd=ROOT,
            env=django_env(args),
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise SystemExit(f"profiling failed:\n{completed.stdout}\n{completed.stderr}")
        return json.loads(Path(out).read_text())
    finally:
        with contextlib.suppress(OSError):
            os.unlink(out)


# --------------------------------------------------------------------------- report


def evaluate_targets(configs: list[dict]) -> list[dict]:
    def find(items, concurrency, think_ms=0.0):
        return next(
            (
                c
                for c in configs
                if c["items"] == items and c["concurrency"] == concurrency and c["think_ms"] == think_ms
            ),
            None,
        )

    sizes = sorted({c["items"] for c in configs})
    targets = []
    for items in sizes:
        one = find(items, 1)
        if one and one["round_trip_ms"].get("p50") is not None:
            p50 = one["round_trip_ms"]["p50"]
            targets.append(
                {
                    "target": f"1 annotator, {items:,} items: round trip p50 < {TARGET_P50_ONE_ANNOTATOR_MS} ms",
                    "measured": f"{p50:.2f} ms",
                    "met": p50 < TARGET_P50_ONE_ANNOTATOR_MS,
                }
            )
    for items in sizes:
        for think_ms in sorted({c["think_ms"] for c in configs}):
            many = find(items, 32, think_ms)
            if many and many["round_trip_ms"].get("p99") is not None:
                p99 = many["round_trip_ms"]["p99"]
                how = (
                    f"reading {think_ms * 0.5:g} to {think_ms * 1.5:g} ms between judgments"
                    if think_ms
                    else "back to back (saturation: p99 >= 32 / throughput)"
                )
                targets.append(
                    {
                        "target": f"32 annotators {how}, {items:,} items: round trip p99 "
                        f"< {TARGET_P99_32_ANNOTATORS_MS:g} ms",
                        "measured": f"{p99:.2f} ms at {many['round_trips_per_second']:.0f} rt/s",
                        "met": p99 < TARGET_P99_32_ANNOTATORS_MS,
                    }
                )
    if 10_000 in sizes and 1_000_000 in sizes:
        for concurrency in sorted({c["concurrency"] for c in configs}):
            small, large = find(10_000, concurrency), find(1_000_000, concurrency)
            if small and large and small["round_trip_ms"].get("p50") and large["round_trip_ms"].get("p50"):
                ratio = large["round_trip_ms"]["p50"] / small["round_trip_ms"]["p50"]
                targets.append(
                    {
                        "target": f"{concurrency} annotator(s): p50 at 1,000,000 items <= "
                        f"{TARGET_SCALE_RATIO}x p50 at 10,000",
                        "measured": f"{ratio:.2f}x ({large['round_trip_ms']['p50']:.2f} / "
                        f"{small['round_trip_ms']['p50']:.2f} ms)",
                        "met": ratio <= TARGET_SCALE_RATIO,
                    }
                )
    return targets


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 1000 else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


LATENCY_COLUMNS = [
    *("items", "annotators", "think ms", "round trips", "rt/s", "rt p50", "rt p95", "rt p99"),
    *("next p50", "next p95", "next p99", "submit p50", "submit p95", "submit p99"),
    *("server next p50", "p99", "server submit p50", "p99", "errors", "busy before"),
]
CPU_COLUMNS = [
    *("items", "annotators", "think ms", "busy", "client", "gunicorn", "pg", "other"),
    *("client ms/rt", "gunicorn ms/rt", "pg ms/rt"),
]
PROFILE_COLUMNS = [
    "items",
    "request",
    "in-process",
    "DB wait",
    "Python",
    "SQL statements",
    "BEGIN/COMMIT",
    "DB round trips",
]


def markdown(report: dict) -> str:
    m = report["machine"]
    pg_settings = ", ".join(f"{k}={v}" for k, v in m["postgresql_settings"].items())
    lines = [
        "# API latency: `next` + `submit` round trips",
        "",
        f"Run {report['started_at']} ({report['mode']}, {report['duration_seconds']:.0f} s), "
        f"code: commit {report['code']['served']['commit']}"
        f"{' + uncommitted app changes' if report['code']['served']['uncommitted_app_changes'] else ''} "
        f"(fingerprint {report['code']['served'].get('fingerprint')}).",
        "",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux {m['kernel']}.",
        f"- Software: Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}, psycopg {m['psycopg']}, "
        f"{m['postgresql'].split(' on ')[0]} ({pg_settings}).",
        f"- Load average at start: {' / '.join(str(x) for x in m['load_average_at_start'])} (1/5/15 min); "
        f"machine busy in the second before: {m['cpu_busy_fraction_at_start']:.0%}; at the end: "
        f"{' / '.join(str(x) for x in report['load_average_at_end'])}.",
        f"- Server: `{report['server']['command']}` (sync workers, DB_CONN_MAX_AGE={report['server']['conn_max_age']}, "
        "DEBUG=0), PostgreSQL on the same machine.",
        f"- Client: {report['client']}.",
        *(
            [
                f"- Priority: the benchmark, gunicorn and the PostgreSQL backends serving it ran at nice "
                f"{report['server']['nice']}, ahead of other work on the machine."
            ]
            if report["server"].get("nice")
            else []
        ),
        f"- Budget per configuration: {report['budget']['round_trips']:,} round trips or "
        f"{report['budget']['seconds']:g} s, after {report['budget']['warmup_round_trips']} warm-up round trips; "
        f"{report['budget']['note']}.",
        "",
        "Latency in ms, measured by the client (connect, request, response, close); rt = next + submit. "
        "`server` columns: the time gunicorn's access log gives for the same requests (reading the request "
        "to writing the response), so the difference is connecting, queueing for a worker and the client's "
        "own scheduling. With think time, each annotator pauses 0.5x to 1.5x that long after a round trip and "
        "starts at a random point of its first pause.",
        "",
        row(LATENCY_COLUMNS),
        row(["---:"] * (len(LATENCY_COLUMNS) - 1) + ["---"]),
    ]
    for c in report["configurations"]:
        rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
        lines.append(
            row(
                [
                    *(f"{c['items']:,}", c["concurrency"], c["think_ms"], f"{c['round_trips']:,}"),
                    f"{c['round_trips_per_second']:.1f}",
                    *(fmt(d.get(k)) for d in (rt, nx, sb) for k in ("p50", "p95", "p99")),
                    *(fmt(c[d].get(k)) for d in ("server_next_ms", "server_submit_ms") for k in ("p50", "p99")),
                    *(c["errors"], f"{c['machine_busy_before']:.0%}"),
                ]
            )
        )
    lines += [
        "",
        "CPU during each measured phase, in cores (of 2) and ms of CPU per round trip. `pg` counts the "
        "backends serving the benchmark database; `other` is everything else on the machine (other work "
        "running at the same time).",
        "",
        row(CPU_COLUMNS),
        row(["---:"] * len(CPU_COLUMNS)),
    ]
    for c in report["configurations"]:
        cpu = c["cpu"]
        lines.append(
            row(
                [
                    *(f"{c['items']:,}", c["concurrency"], c["think_ms"]),
                    *(cpu["machine_busy_cores"], cpu["client_cores"]),
                    *(cpu["gunicorn_cores"], cpu["postgres_backends_cores"], cpu["other_cores"]),
                    *(cpu["client_ms_per_round_trip"], cpu["gunicorn_ms_per_round_trip"]),
                    cpu["postgres_ms_per_round_trip"],
                ]
            )
        )
    base = report.get("baseline")
    if base:
        lines += [
            "",
            f"Floor over HTTP, same server, new connection each: {base['what']}: "
            f"p50 {fmt(base['ms']['p50'])} ms, p99 {fmt(base['ms']['p99'])} ms.",
        ]
    lines += ["", "## Targets", ""]
    if report["targets"]:
        lines += [row(["target", "measured", "met"]), row(["---"] * 3)]
    else:
        lines.append("None judged here: this run has no 1- or 32-annotator configuration.")
    for target in report["targets"]:
        lines.append(row([target["target"], target["measured"], "yes" if target["met"] else "**no**"]))
    profiles = report.get("profile") or {}
    if profiles:
        lines += [
            "",
            "## Where the time goes",
            "",
            "In-process (Django test client through the full middleware stack, same database, one annotator, "
            "no profiler), p50 in ms. DB = SQL statements plus BEGIN/COMMIT, waiting on PostgreSQL.",
            "",
            row(PROFILE_COLUMNS),
            row(["---:", "---"] + ["---:"] * (len(PROFILE_COLUMNS) - 2)),
        ]
        for slug, prof in profiles.items():
            for kind in ("next", "submit"):
                p = prof[kind]
                lines.append(
                    row(
                        [
                            *(slug.removeprefix("bench-"), kind, fmt(p["in_process_ms"]["p50"])),
                            *(fmt(p["db_wait_ms_p50"]), fmt(p["python_ms_p50"]), f"{p['queries_per_request']:g}"),
                            *(len(p["commands"]), f"{p['db_round_trips_per_request']:g}"),
                        ]
                    )
                )
        first = next(iter(profiles.values()))
        lines += ["", "Phases, p50 ms (total, of which SQL):", ""]
        lines += [row(["items", "request", "phase", "total", "SQL"]), row(["---:", "---", "---", "---:", "---:"])]
        for slug, prof in profiles.items():
            for kind in ("next", "submit"):
                for name, phase in prof[kind]["phases"].items():
                    lines.append(
                        row(
                            [
                                slug.removeprefix("bench-"),
                                kind,
                                name,
                                fmt(phase["total_ms_p50"]),
                                fmt(phase["sql_ms_p50"]),
                            ]
                        )
                    )
        floor = first["floor_401_in_process_ms"]
        lines += [
            "",
            f"In-process floor (401 without a token, no SQL): p50 {fmt(floor['p50'])} ms.",
            "",
            f"Query lists, EXPLAIN plans and cProfile output: `{report['out']}_profile.md` beside this file.",
        ]
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def profile_markdown(report: dict) -> str:
    lines = ["# API latency: in-process profile of `next` + `submit`", ""]
    for slug, prof in (report.get("profile") or {}).items():
        lines += [f"## {slug} ({prof['rounds']} round trips)", ""]
        for kind in ("next", "submit"):
            p = prof[kind]
            lines += [
                f"### {kind}: {p['queries_per_request']:g} statements + {' '.join(p['commands'])}; "
                f"in-process p50 {fmt(p['in_process_ms']['p50'])} ms, DB wait p50 {fmt(p['db_wait_ms_p50'])} ms",
                "",
                row(["per request", "mean ms", "p50 ms", "SQL"]),
                row(["---:", "---:", "---:", "---"]),
            ]
            for q in p["queries"]:
                sql = q["sql"].replace("|", "\\|").replace("\n", " ")
                lines.append(row([f"{q['per_request']:g}", f"{q['mean_ms']:.3f}", f"{q['p50_ms']:.3f}", f"`{sql}`"]))
            lines.append("")
        lines += ["### EXPLAIN (ANALYZE, BUFFERS) of the SELECTs of one `next`", ""]
        for plan in prof["explain_next"]:
            lines += ["```sql", plan["sql"], "```", "```", plan["plan"], "```", ""]
        lines += [f"### cProfile, {prof['cprofile_round_trips']} round trips", "", "```", prof["cprofile"], "```", ""]
    return "\n".join(lines) + "\n"


def print_summary(report: dict) -> None:
    m = report["machine"]
    log("")
    log("== machine")
    log(f"   {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux {m['kernel']}")
    log(f"   load average at start {m['load_average_at_start']}, busy {m['cpu_busy_fraction_at_start']:.0%}")
    log(f"   top processes at start: {m['top_processes_at_start'][:4]}")
    log(f"   Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}, psycopg {m['psycopg']}")
    log(f"   {m['postgresql']}")
    log(f"   {m['postgresql_settings']}")
    log("")
    log(f"== results, ms (client: {report['client']})")
    header = f"{'items':>9} {'ann':>4} {'think':>5} {'n':>5} {'rt/s':>7} | {'rt p50':>7} {'p95':>7} {'p99':>7} | "
    header += f"{'next50':>7} {'p95':>7} {'p99':>7} | {'sub50':>7} {'p95':>7} {'p99':>7} | err busy"
    log(header)
    for c in report["configurations"]:
        rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
        log(
            f"{c['items']:>9,} {c['concurrency']:>4} {c['think_ms']:>5g} {c['round_trips']:>5} "
            f"{c['round_trips_per_second']:>7.1f} | "
            + " | ".join(" ".join(f"{fmt(d.get(k)):>7}" for k in ("p50", "p95", "p99")) for d in (rt, nx, sb))
            + f" | {c['errors']:>3} {c['machine_busy_before']:.0%}"
        )
    if report.get("baseline"):
        b = report["baseline"]
        log(f"   floor ({b['what']}): p50 {fmt(b['ms']['p50'])} ms, p99 {fmt(b['ms']['p99'])} ms")
    log("")
    log("== targets")
    for target in report["targets"]:
        log(f"   [{'MET' if target['met'] else 'NOT MET'}] {target['target']}: {target['measured']}")
    for slug, prof in (report.get("profile") or {}).items():
        log("")
        log(f"== in-process, {slug}")
        for kind in ("next", "submit"):
            p = prof[kind]
            log(
                f"   {kind}: p50 {fmt(p['in_process_ms']['p50'])} ms = DB wait {fmt(p['db_wait_ms_p50'])} "
                f"+ Python {fmt(p['python_ms_p50'])}; {p['queries_per_request']:g} statements "
                f"+ {len(p['commands'])} BEGIN/COMMIT"
            )
            for name, phase in p["phases"].items():
                log(f"      {name:<40} {fmt(phase['total_ms_p50']):>7} ms (SQL {fmt(phase['sql_ms_p50'])})")


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--items", default="10000,1000000", help="project sizes, comma-separated (default 10000,1000000)")
    add("--concurrency", default="1,8,32", help="simultaneous annotators, comma-separated (default 1,8,32)")
    add("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    add("--round-trips", type=int, default=2000, help="measured round trips per configuration, at most")
    add("--duration", type=float, default=30.0, help="seconds per configuration, at most (default 30)")
    add("--warmup", type=int, default=100, help="warm-up round trips per configuration, all annotators together")
    add(
        "--think-ms",
        default="0,1000",
        help="mean pause after each round trip, comma-separated: each value is its own configuration "
        "(default 0,1000: back to back, then readers pausing 0.5 to 1.5 s)",
    )
    add("--quick", action="store_true", help="smoke check: 10,000 items, 1 and 8 annotators, 300 round trips")
    add("--reuse", action="store_true", help="keep an already-seeded database instead of creating it anew")
    add("--drop", action="store_true", help="drop the benchmark database at the end")
    add(
        "--wait-idle",
        type=float,
        default=None,
        help="before each configuration wait until the machine is busy "
        "less than this share (e.g. 0.3), at most --wait-max seconds",
    )
    add("--wait-max", type=float, default=300.0, help="longest wait for --wait-idle, seconds")
    add("--no-profile", action="store_true", help="skip the in-process profile")
    add("--profile-rounds", type=int, default=300, help="round trips of the in-process profile")
    add("--db-url", default=DEFAULT_DB_URL, help="the benchmark's own database (created, reset, maybe dropped)")
    add("--conn-max-age", type=int, default=60, help="DB_CONN_MAX_AGE for the server (default 60)")
    add("--out", default=None, help="results file stem in bench/results (default api_latency, api_latency_quick)")
    add("--note", action="append", default=[], help="a note to keep with the results (repeatable)")
    add(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority (e.g. -10, needs root) for the benchmark, gunicorn and the PostgreSQL "
        "backends serving it, to keep other work on a shared machine from distorting the figures",
    )
    add("--profile-child", help=argparse.SUPPRESS)
    add("--profile-token", help=argparse.SUPPRESS)
    add("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.concurrency = "10000", "1,8"
        args.round_trips, args.duration, args.warmup, args.profile_rounds = 300, 10.0, 20, 100
        args.think_ms = "0"
    args.items = [int(x.replace("_", "")) for x in str(args.items).split(",") if x.strip()]
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    args.think_ms = [float(x) for x in str(args.think_ms).split(",") if x.strip()]
    args.out = args.out or ("api_latency_quick" if args.quick else "api_latency")
    if not args.out.startswith("api_latency"):
        parser.error("--out must start with api_latency")
    if db_name(args.db_url) in ("", "postgres", "template0", "template1"):
        parser.error("--db-url must name the benchmark's own database; it is dropped and created")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile_child:
        profile_child(args.profile_child, args.profile_token, args.profile_rounds, 100, args.profile_out)
        return 0
    # Stop cleanly (gunicorn and the annotator processes too) on Ctrl-C or kill, even when
    # started in the background, where SIGINT may arrive ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # inherited by gunicorn and the annotator processes
        # With autogroup scheduling, nice only ranks processes within their session's group:
        # give this session's group (this process, gunicorn, the annotators) the priority too.
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(args.nice))
    started_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    machine = describe_machine(args)
    log(f"== {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB")
    log(f"   load average {machine['load_average_at_start']}, busy {machine['cpu_busy_fraction_at_start']:.0%}")
    code_at_start = code_state()
    seeding = setup_database(args)
    tokens = create_annotators(args, max(args.concurrency))
    server = Gunicorn(args)
    configurations, base = [], None
    try:
        log(f"== starting {' '.join(server.command[2:])}")
        server.start()
        base = baseline(server, 200 if not args.quick else 50)
        log(f"   floor (401, no SQL): p50 {base['ms']['p50']} ms")
        for items in args.items:
            for think_ms in args.think_ms:
                for concurrency in args.concurrency:
                    log(
                        f"== {items:,} items, {concurrency} annotator(s), think {think_ms:g} ms, "
                        f"load {os.getloadavg()[0]:.2f}"
                    )
                    with BackendRenicer(args):
                        config = run_configuration(args, server, slug_for(items), items, concurrency, think_ms, tokens)
                    rt = config["round_trip_ms"]
                    log(
                        f"   {config['round_trips']} round trips, {config['round_trips_per_second']} rt/s, "
                        f"p50 {rt.get('p50')} p95 {rt.get('p95')} p99 {rt.get('p99')} ms, "
                        f"errors {config['errors']}, busy before {config['machine_busy_before']:.0%}, "
                        f"other work {config['cpu']['other_cores']} cores"
                    )
                    configurations.append(config)
    finally:
        server.stop()
        log("== gunicorn stopped")
    code_at_end = code_state()
    notes = list(args.note)
    if code_at_end.get("fingerprint") != code_at_start.get("fingerprint"):
        notes.append(
            f"The app code changed during the run ({code_at_start.get('fingerprint')} -> "
            f"{code_at_end.get('fingerprint')}): gunicorn served the first, the in-process profile ran the second."
        )
    profiles = {}
    if not args.no_profile:
        for items in args.items:
            log(f"== in-process profile, {items:,} items")
            try:
                with BackendRenicer(args):
                    profiles[slug_for(items)] = run_profile(args, slug_for(items), tokens[0])
            except SystemExit as failure:  # keep the measured figures; say why the profile is missing
                log(f"   {failure}")
                notes.append(f"The in-process profile of {items:,} items failed: {str(failure).splitlines()[0]}")
            reset_project(args, slug_for(items))
    client = (
        "one OS process per simulated annotator (no GIL shared between them), http.client, a new TCP "
        "connection per request (Connection: close), on the same machine as gunicorn and PostgreSQL, "
        "competing with them for the cores (its CPU is measured below)"
    )
    report = {
        "benchmark": "api_latency",
        "started_at": started_at,
        "mode": "quick" if args.quick else "full",
        "out": args.out,
        "duration_seconds": round(time.monotonic() - t0, 1),
        "machine": machine,
        "code": {"served": code_at_start, "profiled": code_at_end},
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "database": {"url": args.db_url, "seeding": seeding},
        "server": {
            "command": f"gunicorn feedback.wsgi --workers {args.workers} --bind 127.0.0.1:<port>",
            "workers": args.workers,
            "worker_class": "sync",
            "conn_max_age": args.conn_max_age,
            "env": {"DEBUG": "0", "SECRET_KEY": "bench", "ALLOWED_HOSTS": HOST, "LOG_LEVEL": "WARNING"},
            "nice": args.nice,
        },
        "client": client,
        "budget": {
            "round_trips": args.round_trips,
            "seconds": args.duration,
            "warmup_round_trips": args.warmup,
            "think_ms": args.think_ms,  # one configuration per value
            "note": "each configuration starts from a reset project (no assignments or judgments, all items "
            "open, VACUUM ANALYZE); overlap 1, so each round trip judges a fresh item",
        },
        "baseline": base,
        "configurations": configurations,
        "targets": evaluate_targets(configurations),
        "profile": profiles,
        "notes": notes,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(report))
    if profiles:
        (RESULTS / f"{args.out}_profile.md").write_text(profile_markdown(report))
    print_summary(report)
    log(f"\nwrote {RESULTS / (args.out + '.json')} and {RESULTS / (args.out + '.md')}")
    if args.drop:
        database_drop(args)
        log(f"dropped database {db_name(args.db_url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
