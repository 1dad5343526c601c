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


def seed_project(conn, slug: str, items: int, chunk: int = 250_000) -> float:
    """Insert the project, its items and two responses per item with SQL; returns seconds."""
    started = time.perf_counter()
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '256MB'")
    project_id = conn.execute(
        """
        INSERT INTO labeling_project
            (slug, title, guidelines, mode, overlap, lease_seconds, "order", show_model_names, license, created_at)
        VALUES (%s, %s, '', 'pairwise', 1, 1800, 'depth-first', false, 'cc-by-4.0', now())
        RETURNING id
        """,
        (slug, f"Benchmark, {items:,} items"),
    ).fetchone()[0]
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
                           jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Q' || g || '. ' || %(prompt)s)),
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
    with pg_connect(args.db_url) as conn:
        for items in args.items:
            slug = slug_for(items)
            project_id, have_items, have_responses = project_state(conn, slug)
            if project_id is not None and have_items == items and have_responses == 2 * items:
                log(f"== project {slug}: {items:,} items already seeded")
                seeding[slug] = {"items": items, "seeded_now": False}
                continue
            if project_id is not None:
                raise SystemExit(
                    f"Project {slug} exists with {have_items:,} items and {have_responses:,} responses, "
                    f"not {items:,} and {2 * items:,}: run without --reuse to start from a fresh database."
                )
            log(f"== seeding project {slug}: {items:,} items, 2 responses each (SQL generate_series)")
            seconds = seed_project(conn, slug, items)
            seeding[slug] = {"items": items, "seeded_now": True, "seconds": round(seconds, 1)}
        log("== VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    return seeding


ANNOTATORS_SNIPPET = """
import json, sys
from django.contrib.auth import get_user_model
from labeling.models import ApiToken, Membership, Project
from labeling.services.projects import token_create

count, prefix, slugs = int(sys.argv[-3]), sys.argv[-2], sys.argv[-1].split(",")
User = get_user_model()
projects = list(Project.objects.filter(slug__in=slugs))
tokens = {}
for index in range(count):
    name = f"{prefix}{index:02d}"
    user = User.objects.filter(username=name).first() or User.objects.create_user(name)
    for project in projects:
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": "annotator"})
    ApiToken.objects.filter(user=user).delete()
    tokens[name] = token_create(username=name, name="bench")[1]
print("BENCH_TOKENS=" + json.dumps(tokens))
"""


def create_annotators(args, count: int) -> list[str]:
    """Users (create_user), memberships and fresh API tokens, through Django; returns the tokens."""
    slugs = ",".join(slug_for(n) for n in args.items)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); exec(open(0).read())",
            str(count),
            ANNOTATOR_PREFIX,
            slugs,
        ],
        cwd=ROOT,
        env=django_env(args),
        input=ANNOTATORS_SNIPPET,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"creating annotators failed:\n{result.stdout}\n{result.stderr}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH_TOKENS="))
    tokens = json.loads(line.split("=", 1)[1])
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
            conn.execute("DELETE FROM labeling_judgment WHERE project_id = %s", (project_id,))
            conn.execute("DELETE FROM labeling_assignment WHERE project_id = %s", (project_id,))
        for table in ("labeling_item", "labeling_assignment", "labeling_judgment"):
            conn.execute("VACUUM ANALYZE " + table)


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

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(Path(self.log_file.name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
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


def http_post(port: int, path: str, token: str | None, body: bytes) -> tuple[int, bytes, float]:
    """One POST on a NEW TCP connection (Connection: close); returns status, body, seconds."""
    headers = {"Connection": "close", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
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


def round_trip(port: int, slug: str, token: str) -> dict:
    """next + submit; times in ms. `outcome`: ok, drained (204) or error."""
    started = time.perf_counter()
    status, body, next_s = http_post(port, f"/api/projects/{slug}/next", token, b"")
    if status == 204:
        return {"outcome": "drained", "next_ms": next_s * 1000}
    if status != 200:
        return {"outcome": "error", "where": "next", "status": status, "body": body[:200].decode(errors="replace")}
    data = json.loads(body)
    ranking = [[response["id"]] for response in data["item"]["responses"]]
    payload = json.dumps({"ranking": ranking}).encode()
    status, body, submit_s = http_post(port, f"/api/assignments/{data['assignment']}/judgment", token, payload)
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


def annotator_process(port, slug, token, warmup, max_round_trips, duration, barrier, counter, queue):
    """One simulated annotator (its own process): warm up, wait for the others, then loop."""
    records, errors, drained = [], [], 0
    try:
        for _ in range(warmup):
            result = round_trip(port, slug, token)
            if result["outcome"] == "error":
                errors.append({**result, "warmup": True})
        barrier.wait(timeout=300)
        start = time.monotonic()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        deadline = start + duration
        while time.monotonic() < deadline:
            with counter.get_lock():
                if counter.value >= max_round_trips:
                    break
                counter.value += 1
            result = round_trip(port, slug, token)
            if result["outcome"] == "ok":
                records.append((result["next_ms"], result["submit_ms"], result["round_trip_ms"], result["end"]))
            elif result["outcome"] == "drained":
                drained += 1
                break
            else:
                errors.append(result)
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        queue.put({"records": records, "errors": errors, "drained": drained, "start": start, "cpu_s": cpu})
    except Exception as error:  # reported to the parent, which fails the configuration
        queue.put({"records": records, "errors": [*errors, {"outcome": "crash", "error": repr(error)}], "crash": True})


def run_configuration(args, server: Gunicorn, slug: str, items: int, concurrency: int, tokens: list[str]) -> dict:
    ctx = mp.get_context("spawn")
    reset_project(args, slug)
    warmup_each = max(1, math.ceil(args.warmup / concurrency))
    barrier = ctx.Barrier(concurrency + 1)
    counter = ctx.Value("i", 0)
    queue = ctx.Queue()
    load_before = [round(x, 2) for x in os.getloadavg()]
    processes = [
        ctx.Process(
            target=annotator_process,
            args=(server.port, slug, tokens[i], warmup_each, args.round_trips, args.duration, barrier, counter, queue),
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
    return {
        "items": items,
        "project": slug,
        "concurrency": concurrency,
        "workers": args.workers,
        "round_trips": len(records),
        "warmup_round_trips": warmup_each * concurrency,
        "wall_seconds": round(wall, 3),
        "round_trips_per_second": round(len(records) / wall, 1),
        "requests_per_second": round(2 * len(records) / wall, 1),
        "round_trip_ms": summary([record[2] for record in records]),
        "next_ms": summary([record[0] for record in records]),
        "submit_ms": summary([record[1] for record in records]),
        "errors": len(errors),
        "error_samples": errors[:5],
        "drained": sum(result["drained"] for result in results),
        "load_average_before": load_before,
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


def baseline(server: Gunicorn, count: int) -> dict:
    """Floor: an unauthenticated POST answered 401 by django-ninja before any SQL, new connection each."""
    times = []
    for _ in range(count):
        status, _, seconds = http_post(server.port, "/api/projects/none/next", None, b"")
        if status == 401:
            times.append(seconds * 1000)
    return {"what": "POST /api/projects/none/next without a token -> 401 (no SQL)", "ms": summary(times)}


# --------------------------------------------------------------------------- in-process profile


def profile_child(slug: str, token: str, rounds: int, profiled: int, out: str) -> None:
    """Runs inside a subprocess with the Django environment: SQL and Python time per request."""
    import cProfile
    import io
    import pstats

    import django

    django.setup()
    from django.db import connection, transaction
    from django.test import Client

    client = Client(HTTP_HOST=HOST, headers={"Authorization": f"Bearer {token}"})

    class Recorder:
        def __init__(self):
            self.queries = []

        def __call__(self, execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                self.queries.append((sql, params, (time.perf_counter() - started) * 1000))

    def one_round(recorders=None):
        timings = {}
        rec = Recorder()
        started = time.perf_counter()
        with connection.execute_wrapper(rec):
            response = client.post(f"/api/projects/{slug}/next")
        timings["next_ms"] = (time.perf_counter() - started) * 1000
        timings["next_queries"] = rec.queries
        assert response.status_code == 200, response.content
        data = response.json()
        ranking = [[r["id"]] for r in data["item"]["responses"]]
        rec = Recorder()
        started = time.perf_counter()
        with connection.execute_wrapper(rec):
            response = client.post(
                f"/api/assignments/{data['assignment']}/judgment",
                data=json.dumps({"ranking": ranking}),
                content_type="application/json",
            )
        timings["submit_ms"] = (time.perf_counter() - started) * 1000
        timings["submit_queries"] = rec.queries
        assert response.status_code == 201, response.content
        return timings

    for _ in range(20):
        one_round()
    samples = [one_round() for _ in range(rounds)]

    def per_request(kind: str) -> dict:
        totals = [s[f"{kind}_ms"] for s in samples]
        sql_ms = [sum(q[2] for q in s[f"{kind}_queries"]) for s in samples]
        counts = [len(s[f"{kind}_queries"]) for s in samples]
        by_sql: dict[str, list[float]] = {}
        first_params: dict[str, object] = {}
        for s in samples:
            for sql, params, ms in s[f"{kind}_queries"]:
                by_sql.setdefault(sql, []).append(ms)
                first_params.setdefault(sql, params)
        queries = [
            {
                "sql": sql,
                "per_request": round(len(ms) / len(samples), 2),
                "mean_ms": round(sum(ms) / len(ms), 3),
                "p50_ms": round(percentile(sorted(ms), 50), 3),
            }
            for sql, ms in by_sql.items()
        ]
        return {
            "in_process_ms": summary(totals),
            "sql_execute_ms": summary(sql_ms),
            "python_and_commit_ms_p50": round(percentile(sorted(totals), 50) - percentile(sorted(sql_ms), 50), 3),
            "queries_per_request": round(sum(counts) / len(counts), 2),
            "queries": queries,
            "_params": first_params,
        }

    result = {"slug": slug, "rounds": rounds, "next": per_request("next"), "submit": per_request("submit")}

    # EXPLAIN ANALYZE the SELECTs of one `next`, in a transaction that is rolled back.
    plans = []
    sample = one_round()
    for sql, params, _ in sample["next_queries"]:
        if not sql.lstrip().upper().startswith("SELECT"):
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
    stats.sort_stats("cumulative").print_stats(40)
    result["cprofile_round_trips"] = profiled
    result["cprofile"] = buffer.getvalue().replace(str(ROOT) + "/", "").replace(sys.prefix + "/", "")
    for kind in ("next", "submit"):
        result[kind].pop("_params")
    Path(out).write_text(json.dumps(result))


def run_profile(args, slug: str, token: str) -> dict:
    reset_project(args, slug)
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
    def find(items, concurrency):
        return next((c for c in configs if c["items"] == items and c["concurrency"] == concurrency), None)

    sizes = sorted({c["items"] for c in configs})
    targets = []
    for items in sizes:
        one = find(items, 1)
        if one:
            p50 = one["round_trip_ms"].get("p50")
            targets.append(
                {
                    "target": f"1 annotator, {items:,} items: round trip p50 < {TARGET_P50_ONE_ANNOTATOR_MS} ms",
                    "measured": f"{p50:.2f} ms",
                    "met": p50 is not None and p50 < TARGET_P50_ONE_ANNOTATOR_MS,
                }
            )
    for items in sizes:
        many = find(items, 32)
        if many:
            p99 = many["round_trip_ms"].get("p99")
            targets.append(
                {
                    "target": f"32 annotators, {items:,} items: round trip p99 < {TARGET_P99_32_ANNOTATORS_MS:g} ms",
                    "measured": f"{p99:.2f} ms",
                    "met": p99 is not None and p99 < TARGET_P99_32_ANNOTATORS_MS,
                }
            )
    if 10_000 in sizes and 1_000_000 in sizes:
        for concurrency in sorted({c["concurrency"] for c in configs}):
            small, large = find(10_000, concurrency), find(1_000_000, concurrency)
            if small and large:
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
    return "-" if value is None else f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        "# API latency: `next` + `submit` round trips",
        "",
        f"Run {report['started_at']} ({report['mode']}), commit {machine['git_commit']}, "
        f"{report['duration_seconds']:.0f} s in all.",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, "
        f"Linux {machine['kernel']}; Python {machine['python']}, Django {machine['django']}, "
        f"gunicorn {machine['gunicorn']}, psycopg {machine['psycopg']}; "
        f"{machine['postgresql'].split(' on ')[0]} ({', '.join(f'{k}={v}' for k, v in machine['postgresql_settings'].items())}).",
        f"Load average at start: {' / '.join(str(x) for x in machine['load_average_at_start'])} (1/5/15 min); "
        f"CPU busy in the second before start: {machine['cpu_busy_fraction_at_start']:.0%} of the machine.",
        "",
        f"Server: `{report['server']['command']}` ({report['server']['workers']} sync workers, "
        f"DB_CONN_MAX_AGE={report['server']['conn_max_age']}), PostgreSQL on the same machine. "
        f"Client: {report['client']}",
        "",
        "Latency in ms (client side: connect, request, response, close).",
        "",
        "| items | annotators | round trips | rt/s | rt p50 | rt p95 | rt p99 | next p50 | next p95 | next p99 "
        "| submit p50 | submit p95 | submit p99 | errors | load avg before | CPU cores: client / gunicorn / pg / other |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for c in report["configurations"]:
        rt, nx, sb, cpu = c["round_trip_ms"], c["next_ms"], c["submit_ms"], c["cpu"]
        lines.append(
            f"| {c['items']:,} | {c['concurrency']} | {c['round_trips']:,} | {c['round_trips_per_second']:.1f} "
            f"| {fmt(rt.get('p50'))} | {fmt(rt.get('p95'))} | {fmt(rt.get('p99'))} "
            f"| {fmt(nx.get('p50'))} | {fmt(nx.get('p95'))} | {fmt(nx.get('p99'))} "
            f"| {fmt(sb.get('p50'))} | {fmt(sb.get('p95'))} | {fmt(sb.get('p99'))} "
            f"| {c['errors']} | {c['load_average_before'][0]} "
            f"| {cpu['client_cores']} / {cpu['gunicorn_cores']} / {cpu['postgres_backends_cores']} / {cpu['other_cores']} |"
        )
    base = report.get("baseline")
    if base:
        lines += [
            "",
            f"Floor, same server, new connection each: {base['what']}: p50 {fmt(base['ms']['p50'])} ms, "
            f"p99 {fmt(base['ms']['p99'])} ms.",
        ]
    lines += ["", "## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    for target in report["targets"]:
        lines.append(f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else '**no**'} |")
    profiles = report.get("profile") or {}
    if profiles:
        lines += [
            "",
            "## Where the time goes (in-process, Django test client, same database, one annotator)",
            "",
            "| items | request | in-process p50 ms | SQL execute p50 ms | Python + commits p50 ms | queries |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for slug, profile in profiles.items():
            for kind in ("next", "submit"):
                p = profile[kind]
                lines.append(
                    f"| {slug.removeprefix('bench-')} | {kind} | {fmt(p['in_process_ms']['p50'])} "
                    f"| {fmt(p['sql_execute_ms']['p50'])} | {fmt(p['python_and_commit_ms_p50'])} "
                    f"| {p['queries_per_request']:g} |"
                )
        lines += ["", "Query lists, EXPLAIN plans and cProfile output: `api_latency_profile.md` beside this file."]
    return "\n".join(lines) + "\n"


def profile_markdown(report: dict) -> str:
    lines = ["# API latency: in-process profile of `next` + `submit`", ""]
    for slug, profile in (report.get("profile") or {}).items():
        lines += [f"## {slug} ({profile['rounds']} round trips)", ""]
        for kind in ("next", "submit"):
            p = profile[kind]
            lines += [
                f"### {kind}: {p['queries_per_request']:g} queries, in-process p50 {fmt(p['in_process_ms']['p50'])} ms, "
                f"SQL p50 {fmt(p['sql_execute_ms']['p50'])} ms",
                "",
                "| per request | mean ms | p50 ms | SQL |",
                "| ---: | ---: | ---: | --- |",
            ]
            for q in p["queries"]:
                sql = q["sql"].replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {q['per_request']:g} | {q['mean_ms']:.3f} | {q['p50_ms']:.3f} | `{sql}` |")
            lines.append("")
        lines += ["### EXPLAIN (ANALYZE, BUFFERS) of the SELECTs of one `next`", ""]
        for plan in profile["explain_next"]:
            lines += ["```sql", plan["sql"], "```", "```", plan["plan"], "```", ""]
        lines += [
            f"### cProfile, {profile['cprofile_round_trips']} round trips",
            "",
            "```",
            profile["cprofile"],
            "```",
            "",
        ]
    return "\n".join(lines) + "\n"


def print_summary(report: dict) -> None:
    machine = report["machine"]
    log("")
    log("== machine")
    log(
        f"   CPU: {machine['cpu_model']} x {machine['cores']} cores; RAM {machine['ram_gb']} GB; kernel {machine['kernel']}"
    )
    log(
        f"   load average at start: {machine['load_average_at_start']}; busy before start: {machine['cpu_busy_fraction_at_start']:.0%}"
    )
    log(f"   top processes at start: {machine['top_processes_at_start'][:4]}")
    log(
        f"   Python {machine['python']}, Django {machine['django']}, gunicorn {machine['gunicorn']}, psycopg {machine['psycopg']}"
    )
    log(f"   {machine['postgresql']}")
    log(f"   {machine['postgresql_settings']}")
    log("")
    log(f"== results (ms; client: {report['client']})")
    header = f"{'items':>9} {'ann':>4} {'n':>5} {'rt/s':>7} | {'rt p50':>7} {'p95':>7} {'p99':>7} | "
    header += f"{'next50':>7} {'p95':>7} {'p99':>7} | {'sub50':>7} {'p95':>7} {'p99':>7} | err load"
    log(header)
    for c in report["configurations"]:
        rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
        log(
            f"{c['items']:>9,} {c['concurrency']:>4} {c['round_trips']:>5} {c['round_trips_per_second']:>7.1f} | "
            f"{fmt(rt.get('p50')):>7} {fmt(rt.get('p95')):>7} {fmt(rt.get('p99')):>7} | "
            f"{fmt(nx.get('p50')):>7} {fmt(nx.get('p95')):>7} {fmt(nx.get('p99')):>7} | "
            f"{fmt(sb.get('p50')):>7} {fmt(sb.get('p95')):>7} {fmt(sb.get('p99')):>7} | "
            f"{c['errors']:>3} {c['load_average_before'][0]}"
        )
    if report.get("baseline"):
        b = report["baseline"]
        log(f"   floor ({b['what']}): p50 {fmt(b['ms']['p50'])} ms, p99 {fmt(b['ms']['p99'])} ms")
    log("")
    log("== targets")
    for target in report["targets"]:
        log(f"   [{'MET' if target['met'] else 'NOT MET'}] {target['target']}: {target['measured']}")
    for slug, profile in (report.get("profile") or {}).items():
        log("")
        log(f"== in-process profile, {slug}")
        for kind in ("next", "submit"):
            p = profile[kind]
            log(
                f"   {kind}: {p['queries_per_request']:g} queries; in-process p50 {fmt(p['in_process_ms']['p50'])} ms, "
                f"of which SQL execute {fmt(p['sql_execute_ms']['p50'])} ms, Python + commits "
                f"{fmt(p['python_and_commit_ms_p50'])} ms"
            )


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", default="10000,1000000", help="project sizes, comma-separated")
    parser.add_argument("--concurrency", default="1,8,32", help="simultaneous annotators, comma-separated")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--round-trips", type=int, default=2000, help="measured round trips per configuration, at most")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per configuration, at most")
    parser.add_argument(
        "--warmup", type=int, default=100, help="warm-up round trips per configuration (all annotators)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke check: 10,000 items, 1 and 8 annotators, 300 round trips"
    )
    parser.add_argument("--reuse", action="store_true", help="keep an already-seeded database")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database at the end")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process profile")
    parser.add_argument("--profile-rounds", type=int, default=300, help="round trips of the in-process profile")
    parser.add_argument("--db-url", default=DEFAULT_DB_URL, help="the benchmark's own database (dropped and created)")
    parser.add_argument("--conn-max-age", type=int, default=60, help="DB_CONN_MAX_AGE for the server")
    parser.add_argument("--out", default=None, help="results file stem (default api_latency, api_latency_quick)")
    parser.add_argument("--profile-child", help=argparse.SUPPRESS)
    parser.add_argument("--profile-token", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.concurrency = "10000", "1,8"
        args.round_trips, args.duration, args.warmup, args.profile_rounds = 300, 10.0, 20, 100
    args.items = [int(x.replace("_", "")) for x in str(args.items).split(",") if x.strip()]
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x.strip()]
    args.out = args.out or ("api_latency_quick" if args.quick else "api_latency")
    if db_name(args.db_url) in ("", "postgres", "template0", "template1"):
        parser.error("--db-url must name the benchmark's own database; it is dropped and created")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile_child:
        profile_child(args.profile_child, args.profile_token, args.profile_rounds, 100, args.profile_out)
        return 0
    started_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    machine = describe_machine(args)
    log(
        f"== machine: {machine['cpu_model']}, {machine['cores']} cores, {machine['ram_gb']} GB, load {machine['load_average_at_start']}"
    )
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
            for concurrency in args.concurrency:
                log(f"== {items:,} items, {concurrency} annotator(s), load {os.getloadavg()[0]:.2f}")
                config = run_configuration(args, server, slug_for(items), items, concurrency, tokens)
                rt = config["round_trip_ms"]
                log(
                    f"   {config['round_trips']} round trips, {config['round_trips_per_second']} rt/s, "
                    f"p50 {rt.get('p50')} p95 {rt.get('p95')} p99 {rt.get('p99')} ms, errors {config['errors']}"
                )
                configurations.append(config)
    finally:
        server.stop()
        log(f"== gunicorn stopped; log tail:\n{server.log_tail(10)}" if server.log_tail(10) else "== gunicorn stopped")
    profiles = {}
    if not args.no_profile:
        for items in args.items:
            log(f"== in-process profile, {items:,} items")
            profiles[slug_for(items)] = run_profile(args, slug_for(items), tokens[0])
            reset_project(args, slug_for(items))
    report = {
        "benchmark": "api_latency",
        "started_at": started_at,
        "mode": "quick" if args.quick else "full",
        "duration_seconds": round(time.monotonic() - t0, 1),
        "machine": machine,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "database": {"url": args.db_url, "seeding": seeding},
        "server": {
            "command": f"gunicorn feedback.wsgi --workers {args.workers} --bind 127.0.0.1:<port>",
            "workers": args.workers,
            "worker_class": "sync",
            "conn_max_age": args.conn_max_age,
            "env": {"DEBUG": "0", "SECRET_KEY": "bench", "ALLOWED_HOSTS": HOST},
        },
        "client": (
            "one OS process per simulated annotator (no GIL between them), http.client, a new TCP connection "
            "per request (Connection: close), on the same 2-core machine as the server and PostgreSQL"
            if os.cpu_count() == 2
            else "one OS process per simulated annotator (no GIL between them), http.client, a new TCP connection "
            "per request (Connection: close), on the same machine as the server and PostgreSQL"
        ),
        "budget": {
            "round_trips": args.round_trips,
            "seconds": args.duration,
            "warmup_round_trips": args.warmup,
            "note": "each configuration starts from a reset project (all items open, VACUUM ANALYZE); "
            "overlap 1, so each round trip judges a fresh item",
        },
        "baseline": base,
        "configurations": configurations,
        "targets": evaluate_targets(configurations),
        "profile": profiles,
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
