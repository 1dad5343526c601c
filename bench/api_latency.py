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
import collections
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
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DB_URL = "postgres://postgres@127.0.0.1:5432/feedback_bench"
DEFAULT_SQLITE_DIR = Path(tempfile.gettempdir()) / "feedback_bench"
HOST = "127.0.0.1"
ANNOTATOR_PREFIX = "bench-annotator-"
IMPORT_SLUG = "bench-import"
CLK_TCK = os.sysconf("SC_CLK_TCK")
DATABASES = ("sqlite", "sqlite-url", "postgres")
SERVERS = ("gunicorn", "runserver")
PHASES = ("cold", "steady", "after-import")

# Targets from the issues (this 2-core machine).
TARGET_P50_ONE_ANNOTATOR_MS = 8.5
TARGET_P99_MS = 50.0
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


def django_env(args, db: Database) -> dict:
    """The server's environment: DEBUG=0 and exactly one way to the database (no inherited DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SQLITE_PATH")}
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": HOST,
            "DB_CONN_MAX_AGE": str(args.conn_max_age),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "feedback.settings",
            "PYTHONPATH": str(args.app_dir),
            **db.env(),
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


def code_state(app_dir: Path) -> dict:
    """The commit served and a fingerprint of uncommitted changes to the app (labeling/, feedback/, templates/)."""
    import hashlib

    def git(*command):
        return subprocess.run(["git", "-C", str(app_dir), *command], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        subject = git("log", "-1", "--format=%s").strip()
        diff = git("diff", "HEAD", "--", "labeling", "feedback", "templates")
        untracked = git("ls-files", "--others", "--exclude-standard", "--", "labeling", "feedback")
        dirty = git("status", "--porcelain").strip()
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
    pg_version, pg_settings = None, {}
    with contextlib.suppress(Exception), pg_connect(db_url_with_name(args.db_url, "postgres")) as conn:
        pg_version = conn.execute("SELECT version()").fetchone()[0]
        pg_settings = {
            name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
            for name in ("shared_buffers", "synchronous_commit", "fsync", "max_connections", "work_mem", "autovacuum")
        }
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
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
    }


# --------------------------------------------------------------------------- databases


class Database:
    """What the server is pointed at.

    `postgres`: DATABASE_URL=postgres://...; `sqlite`: no DATABASE_URL, SQLITE_PATH=<file> (the
    settings' default path); `sqlite-url`: the same file through DATABASE_URL=sqlite:///<file>.
    """

    def __init__(self, kind: str, url: str | None = None, path: Path | None = None):
        self.kind, self.url, self.path = kind, url, path
        self.engine = "postgres" if kind == "postgres" else "sqlite"

    def __repr__(self) -> str:
        return f"{self.kind}:{self.where}"

    @property
    def where(self) -> str:
        return db_name(self.url) if self.engine == "postgres" else str(self.path)

    @property
    def storage(self) -> str:
        """Two Databases with the same storage share one set of tables (sqlite and sqlite-url)."""
        return self.url if self.engine == "postgres" else str(self.path)

    def env(self) -> dict:
        if self.kind == "postgres":
            return {"DATABASE_URL": self.url}
        if self.kind == "sqlite":
            return {"SQLITE_PATH": str(self.path)}
        return {"DATABASE_URL": f"sqlite:///{self.path}"}

    def exists(self) -> bool:
        if self.engine == "sqlite":
            return self.path.exists()
        with pg_connect(db_url_with_name(self.url, "postgres")) as conn:
            return (
                conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db_name(self.url),)).fetchone()
                is not None
            )

    def create(self, drop_first: bool) -> None:
        if self.engine == "sqlite":
            if drop_first:
                self.drop()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return
        from psycopg import sql

        name = sql.Identifier(db_name(self.url))
        with pg_connect(db_url_with_name(self.url, "postgres")) as conn:
            if drop_first:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))

    def drop(self) -> None:
        if self.engine == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            return
        from psycopg import sql

        with pg_connect(db_url_with_name(self.url, "postgres")) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name(self.url))))

    @contextlib.contextmanager
    def connect(self):
        """The benchmark's own connection (autocommit); `execute` takes %s placeholders on both engines."""
        if self.engine == "postgres":
            with pg_connect(self.url) as conn:
                yield conn
            return
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=120)
        try:
            yield SqliteConnection(conn)
        finally:
            conn.close()

    def sibling(self, suffix: str) -> Database:
        """The same kind of database, elsewhere (the after-import phase's fresh database)."""
        if self.engine == "postgres":
            return Database(self.kind, url=db_url_with_name(self.url, db_name(self.url) + suffix))
        return Database(self.kind, path=self.path.with_name(self.path.stem + suffix + self.path.suffix))


class SqliteConnection:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params=()):
        return self.conn.execute(sql.replace("%s", "?"), params)

    @contextlib.contextmanager
    def transaction(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


def manage(args, db: Database, *command: str, capture: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(args.app_dir / "manage.py"), *command],
        cwd=args.app_dir,
        env=django_env(args, db),
        capture_output=capture,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


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


def check_columns(db: Database, conn) -> None:
    """Fail clearly if the schema gained a NOT NULL column without default that the SQL seeding does not fill."""
    for table, known in (("labeling_item", ITEM_COLUMNS), ("labeling_response", RESPONSE_COLUMNS)):
        if db.engine == "postgres":
            rows = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO'",
                (table,),
            ).fetchall()
            required = {row[0] for row in rows}
        else:
            # PRAGMA table_info: cid, name, type, notnull, dflt_value, pk
            rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
            required = {row[1] for row in rows if row[3] and row[4] is None and not row[5]}
        missing = sorted(required - known)
        if missing:
            raise SystemExit(
                f"{table} has NOT NULL columns the benchmark does not seed: {missing}; update seed_project()."
            )


def seed_project(db: Database, conn, project_id: int, items: int, chunk: int = 250_000) -> float:
    """Insert the project's items and two responses per item with SQL; returns seconds."""
    started = time.perf_counter()
    if db.engine == "postgres":
        conn.execute("SET synchronous_commit = off")
    else:
        conn.execute("PRAGMA synchronous = OFF")  # this connection only; the journal mode is left as it is
    created_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    for low in range(1, items + 1, chunk):
        high = min(low + chunk - 1, items)
        with conn.transaction():
            if db.engine == "postgres":
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
            else:
                first_id = (conn.execute("SELECT coalesce(max(id), 0) FROM labeling_item").fetchone()[0]) + 1
                conn.execute(
                    """
                    INSERT INTO labeling_item
                        (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                         priority, target, votes, filled, is_complete, created_at)
                    WITH RECURSIVE g(n) AS (SELECT %s UNION ALL SELECT n + 1 FROM g WHERE n < %s)
                    SELECT %s, 'item-' || n, json_array(json_object('role', 'user', 'content', 'Q' || n || '. ' || %s)),
                           '{}', NULL, 0, NULL, 0, 1, 0, 0, 0, %s
                    FROM g
                    """,
                    (low, high, project_id, PROMPT_TEXT, created_at),
                )
                conn.execute(
                    """
                    INSERT INTO labeling_response (item_id, position, model, content, metadata)
                    SELECT i.id, p.pos, 'model-' || (p.pos + 1),
                           'Answer ' || (p.pos + 1) || ' to ' || i.external_id || '. ' || %s, '{}'
                    FROM labeling_item AS i CROSS JOIN (SELECT 0 AS pos UNION ALL SELECT 1) AS p
                    WHERE i.id >= %s AND i.project_id = %s
                    ORDER BY i.id, p.pos
                    """,
                    (RESPONSE_TEXT, first_id, project_id),
                )
        log(f"    {high:>9,} / {items:,} items ({time.perf_counter() - started:5.1f} s)")
    return time.perf_counter() - started


def maintain(db: Database, conn, tables: tuple[str, ...] = ()) -> None:
    """The maintenance the steady phase does before timing: VACUUM ANALYZE (PostgreSQL), ANALYZE (SQLite)."""
    if db.engine == "postgres":
        for table in tables or ("",):
            conn.execute(f"VACUUM ANALYZE {table}".strip())
    else:
        for table in tables or ("",):
            conn.execute(f"ANALYZE {table}".strip())


def setup_database(args, db: Database, sizes: list[int]) -> dict:
    """Create (or reuse), migrate and seed; returns facts about the seeding."""
    exists = db.exists()
    if exists and args.reuse:
        log(f"== reusing database {db.where}")
    else:
        log(f"== {'re' if exists else ''}creating database {db.where}")
        db.create(drop_first=exists)
    log(f"== manage.py migrate ({db.kind})")
    manage(args, db, "migrate", "--noinput", capture=True)
    seeding = {}
    run_django_snippet(args, db, PROJECTS_SNIPPET, {"slugs": [slug_for(n) for n in sizes]})
    with db.connect() as conn:
        check_columns(db, conn)
        seeded_now = False
        for items in sizes:
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
            log(f"== seeding project {slug} ({db.engine}): {items:,} items, 2 responses each (SQL)")
            seconds = seed_project(db, conn, project_id, items)
            seeding[slug] = {"items": items, "seeded_now": True, "seconds": round(seconds, 1)}
            seeded_now = True
        if seeded_now or not args.reuse:
            log("== VACUUM ANALYZE" if db.engine == "postgres" else "== ANALYZE")
            maintain(db, conn)
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


def run_django_snippet(args, db: Database, snippet: str, arguments: dict):
    """Run Django code (the served checkout's own services and models) against a benchmark database."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(arguments)],
        cwd=args.app_dir,
        env=django_env(args, db),
        input=snippet,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"Django snippet failed:\n{result.stdout}\n{result.stderr}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH_RESULT="))
    return json.loads(line.split("=", 1)[1])


def create_annotators(args, db: Database, count: int, slugs: list[str]) -> list[str]:
    """Users (create_user), memberships and fresh API tokens, through Django; returns the tokens."""
    arguments = {"count": count, "prefix": ANNOTATOR_PREFIX, "slugs": slugs}
    tokens = run_django_snippet(args, db, ANNOTATORS_SNIPPET, arguments)
    return [tokens[name] for name in sorted(tokens)]


def reset_project(db: Database, slug: str) -> None:
    """No assignments, no judgments, every item open again; then VACUUM ANALYZE / ANALYZE the touched tables."""
    with db.connect() as conn:
        project_id = conn.execute("SELECT id FROM labeling_project WHERE slug = %s", (slug,)).fetchone()[0]
        with conn.transaction():
            conn.execute(
                "UPDATE labeling_item SET votes = 0, filled = 0, is_complete = false "
                "WHERE id IN (SELECT item_id FROM labeling_assignment WHERE project_id = %s)",
                (project_id,),
            )
            if db.engine == "postgres":
                has_revisions = conn.execute("SELECT to_regclass('labeling_judgmentrevision')").fetchone()[0]
            else:
                has_revisions = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'labeling_judgmentrevision'"
                ).fetchone()
            if has_revisions:
                conn.execute(
                    "DELETE FROM labeling_judgmentrevision WHERE judgment_id IN "
                    "(SELECT id FROM labeling_judgment WHERE project_id = %s)",
                    (project_id,),
                )
            conn.execute("DELETE FROM labeling_judgment WHERE project_id = %s", (project_id,))
            conn.execute("DELETE FROM labeling_assignment WHERE project_id = %s", (project_id,))
        if db.engine == "postgres":
            maintain(db, conn, ("labeling_item", "labeling_assignment", "labeling_judgment"))
        else:  # the item table's statistics are the seeding's; ANALYZE of 1M items would take seconds each time
            maintain(db, conn, ("labeling_assignment", "labeling_judgment"))


class BackendRenicer:
    """With --nice, keeps the PostgreSQL backends serving the benchmark database at that priority.

    Backends come and go (DB_CONN_MAX_AGE), so they are looked up and reniced every half second.
    """

    def __init__(self, args, db: Database):
        import threading

        self.args, self.db = args, db
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self):
        if self.args.nice and self.db.engine == "postgres":
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def run(self):
        with pg_connect(self.db.url) as conn:
            while not self.stop_event.is_set():
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                for (pid,) in rows:
                    with contextlib.suppress(OSError):
                        if os.getpriority(os.PRIO_PROCESS, pid) != self.args.nice:
                            os.setpriority(os.PRIO_PROCESS, pid, self.args.nice)
                self.stop_event.wait(0.5)


def backend_pids(db: Database) -> list[int]:
    if db.engine != "postgres":
        return []
    with pg_connect(db.url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- servers


class Server:
    """`gunicorn feedback.wsgi` (sync workers) or `manage.py runserver --noreload`, from --app-dir.

    start() sends no request: it waits until the port accepts a connection, every gunicorn worker
    exists, and the server's processes have used no CPU for a second (done loading), so that the
    first request timed is the first request the server ever sees.
    """

    def __init__(self, args, db: Database, kind: str):
        self.args, self.db, self.kind = args, db, kind
        self.port = free_port()
        self.log_file = tempfile.NamedTemporaryFile(prefix=f"bench-{kind}-", suffix=".log", delete=False)  # noqa: SIM115
        # gunicorn: one line per request: the client's X-Bench-Id, the time gunicorn spent on it
        # (from reading the request to the last byte written, in microseconds) and the worker's pid.
        self.access_log = tempfile.NamedTemporaryFile(prefix="bench-access-", suffix=".log", delete=False)  # noqa: SIM115
        if kind == "gunicorn":
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
                "%({x-bench-id}i)s %(D)s %(p)s",
            ]
            self.label = f"gunicorn feedback.wsgi --workers {args.workers}"
        else:
            self.command = [sys.executable, str(args.app_dir / "manage.py"), "runserver", "--noreload"]
            self.command.append(f"{HOST}:{self.port}")
            self.label = "manage.py runserver --noreload"
        self.process: subprocess.Popen | None = None
        self.ready_seconds = None

    def port_open(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            return s.connect_ex((HOST, self.port)) == 0

    def start(self) -> None:
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            cwd=self.args.app_dir,
            env=django_env(self.args, self.db),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        history: list[tuple[float, float]] = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.kind} exited with {self.process.returncode}:\n{self.log_tail()}")
            now, cpu = time.monotonic(), self.cpu_seconds()
            history.append((now, cpu))
            enough_workers = self.kind != "gunicorn" or len(self.worker_pids()) >= self.args.workers
            settled = [cpu0 for t0, cpu0 in history if now - t0 >= 1.0]
            if enough_workers and settled and cpu - settled[-1] < 0.02 and self.port_open():
                self.ready_seconds = round(now - started, 2)
                return
            time.sleep(0.2)
        raise SystemExit(f"{self.kind} did not settle within 120 s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def cpu_seconds(self) -> float:
        pids = [self.process.pid, *self.worker_pids()] if self.process else []
        return sum(cpu for cpu in (proc_cpu_seconds(pid) for pid in pids) if cpu is not None)

    def served(self) -> dict[str, tuple[int, str]]:
        """Request id -> (microseconds gunicorn spent on it, worker pid), for every request logged so far."""
        times = {}
        with contextlib.suppress(OSError), open(self.access_log.name) as log_lines:
            for line in log_lines:
                parts = line.split()
                if len(parts) == 3 and parts[0] != "-" and parts[1].isdigit():
                    times[parts[0]] = (int(parts[1]), parts[2].strip("<>"))
        return times

    def log_size(self) -> int:
        with contextlib.suppress(OSError):
            return os.path.getsize(self.log_file.name)
        return 0

    def log_since(self, offset: int) -> str:
        with contextlib.suppress(OSError), open(self.log_file.name, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
        return ""

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
    conn = http.client.HTTPConnection(HOST, port, timeout=90)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        status = response.status
    finally:
        conn.close()
    return status, data, time.perf_counter() - started


def round_trip(port: int, slug: str, token: str, request_id: str = "") -> dict:
    """next + submit; times in ms. `outcome`: ok, drained (204) or error (any status or exception)."""
    begin = time.monotonic()
    started = time.perf_counter()
    where = "next"
    try:
        status, body, next_s = http_post(
            port, f"/api/projects/{slug}/next", token, b"", request_id and f"{request_id}n"
        )
        if status == 204:
            return {"outcome": "drained", "next_ms": next_s * 1000}
        if status != 200:
            return {"outcome": "error", "where": "next", "status": status, "body": body[:200].decode(errors="replace")}
        data = json.loads(body)
        ranking = [[response["id"]] for response in data["item"]["responses"]]
        payload = json.dumps({"ranking": ranking}).encode()
        where = "submit"
        status, body, submit_s = http_post(
            port, f"/api/assignments/{data['assignment']}/judgment", token, payload, request_id and f"{request_id}s"
        )
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError) as error:
        return {"outcome": "error", "where": where, "status": type(error).__name__, "body": str(error)[:200]}
    ended = time.perf_counter()
    if status != 201:
        return {"outcome": "error", "where": "submit", "status": status, "body": body[:200].decode(errors="replace")}
    return {
        "outcome": "ok",
        "next_ms": next_s * 1000,
        "submit_ms": submit_s * 1000,
        "round_trip_ms": (ended - started) * 1000,
        "end": time.monotonic(),
        "begin": begin,
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
                    (
                        result["next_ms"],
                        result["submit_ms"],
                        result["round_trip_ms"],
                        result["end"],
                        request_id,
                        result["begin"],
                    )
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
    args,
    db: Database,
    server: Server,
    slug: str,
    items: int,
    concurrency: int,
    tokens: list[str],
    *,
    phase: str,
    think_ms: float = 0.0,
    warmup: int = 0,
    round_trips: int,
    duration: float,
) -> dict:
    """One measured run of `concurrency` annotators on a running server; no reset here (the caller decides)."""
    ctx = mp.get_context("spawn")
    busy_before = wait_until_idle(args) if phase == "steady" else busy_fraction(0.5)
    warmup_each = math.ceil(warmup / concurrency) if warmup else 0
    barrier = ctx.Barrier(concurrency + 1)
    counter = ctx.Value("i", 0)
    queue = ctx.Queue()
    load_before = [round(x, 2) for x in os.getloadavg()]
    log_offset = server.log_size()
    processes = [
        ctx.Process(
            target=annotator_process,
            args=(server.port, slug, tokens[i], warmup_each, round_trips, duration, think_ms, barrier, counter, queue),
            daemon=True,
        )
        for i in range(concurrency)
    ]
    results = []
    try:
        for process in processes:
            process.start()
        pids_before = backend_pids(db)
        barrier.wait(timeout=600)
        # The measured phase starts now: CPU snapshots.
        start = time.monotonic()
        machine0 = machine_cpu_seconds()
        server0 = server.cpu_seconds()
        pg0 = {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids_before}
        for _ in processes:
            results.append(queue.get(timeout=duration + 600))
        machine1 = machine_cpu_seconds()
        server1 = server.cpu_seconds()
        pids_after = backend_pids(db)
        pg1 = {pid: proc_cpu_seconds(pid) or 0.0 for pid in pids_after}
        for process in processes:
            process.join(timeout=30)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
    records = sorted((record for result in results for record in result["records"]), key=lambda r: r[5])
    errors = [error for result in results for error in result["errors"]]
    if any(result.get("crash") for result in results):
        raise SystemExit(f"an annotator process crashed: {errors[-1]}")
    end = max((record[3] for record in records), default=start)
    wall = max(end - start, 1e-9)
    busy = machine1[0] - machine0[0]
    client_cpu = sum(result["cpu_s"] for result in results)
    server_cpu = server1 - server0
    pg_cpu = sum(max(cpu - pg0.get(pid, 0.0), 0.0) for pid, cpu in pg1.items())
    n = max(len(records), 1)
    served = server.served()
    server_next = [served[r[4] + "n"][0] / 1000 for r in records if r[4] + "n" in served]
    server_submit = [served[r[4] + "s"][0] / 1000 for r in records if r[4] + "s" in served]
    # Each worker's first request (gunicorn): the client's and the server's time for it.
    requests = []
    for r in records:
        requests.append((r[5], "next", r[0], r[4] + "n"))
        requests.append((r[5] + r[0] / 1000, "submit", r[1], r[4] + "s"))
    worker_first = {}
    for _, kind, client_ms, request_id in sorted(requests):
        if request_id in served and served[request_id][1] not in worker_first:
            worker_first[served[request_id][1]] = {
                "request": kind,
                "client_ms": round(client_ms, 2),
                "server_ms": round(served[request_id][0] / 1000, 2),
            }
    server_log = server.log_since(log_offset)
    first = records[0] if records else None
    return {
        "db": db.kind,
        "server": server.kind,
        "phase": phase,
        "items": items,
        "project": slug,
        "concurrency": concurrency,
        "think_ms": think_ms,
        "workers": args.workers if server.kind == "gunicorn" else None,
        "round_trips": len(records),
        "warmup_round_trips": warmup_each * concurrency,
        "wall_seconds": round(wall, 3),
        "round_trips_per_second": round(len(records) / wall, 1),
        "requests_per_second": round(2 * len(records) / wall, 1),
        "round_trip_ms": summary([record[2] for record in records]),
        "next_ms": summary([record[0] for record in records]),
        "submit_ms": summary([record[1] for record in records]),
        "first_round_trip_ms": None
        if first is None
        else {"next": round(first[0], 2), "submit": round(first[1], 2), "round_trip": round(first[2], 2)},
        "server_next_ms": summary(server_next),
        "server_submit_ms": summary(server_submit),
        "worker_first_request": worker_first,
        "errors": len(errors),
        "errors_by_kind": dict(collections.Counter(f"{e.get('where')} {e.get('status')}" for e in errors)),
        "error_samples": errors[:5],
        # One line per failed request: the exception Django logs at the end of its traceback.
        "database_locked_in_server_log": sum(
            1
            for line in server_log.splitlines()
            if line.startswith("django.db.utils.OperationalError: database is locked")
        ),
        "server_errors_logged": server_log.count("Internal Server Error:"),
        "drained": sum(result["drained"] for result in results),
        "server_ready_seconds": server.ready_seconds,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine_busy_before": busy_before,
        "cpu": {
            "machine_busy_cores": round(busy / wall, 2),
            "client_cores": round(client_cpu / wall, 2),
            "server_cores": round(server_cpu / wall, 2),
            "postgres_backends_cores": round(pg_cpu / wall, 2),
            "other_cores": round(max(busy - client_cpu - server_cpu - pg_cpu, 0.0) / wall, 2),
            "client_ms_per_round_trip": round(client_cpu * 1000 / n, 2),
            "server_ms_per_round_trip": round(server_cpu * 1000 / n, 2),
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


def baseline(server: Server, count: int) -> dict:
    """Floor: an unauthenticated POST answered 401 by django-ninja before any SQL, new connection each."""
    for _ in range(40):  # every worker imports the URLconf and the API on its first requests
        with contextlib.suppress(OSError, http.client.HTTPException):
            http_post(server.port, "/api/projects/none/next", None, b"")
    times = []
    for _ in range(count):
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _, seconds = http_post(server.port, "/api/projects/none/next", None, b"")
            if status == 401:
                times.append(seconds * 1000)
    return {"what": "POST /api/projects/none/next without a token -> 401 (no SQL)", "ms": summary(times)}


def describe(config: dict) -> str:
    rt, nx, sb = config["round_trip_ms"], config["next_ms"], config["submit_ms"]
    return (
        f"   {config['round_trips']} round trips, {config['round_trips_per_second']} rt/s, "
        f"rt p50 {rt.get('p50')} p99 {rt.get('p99')} max {rt.get('max')} ms; next p50 {nx.get('p50')} "
        f"max {nx.get('max')}; submit p50 {sb.get('p50')} max {sb.get('max')}; errors {config['errors']} "
        f"{config['errors_by_kind'] or ''} locked(log) {config['database_locked_in_server_log']}; "
        f"load {config['load_average_before'][0]}"
    )


# --------------------------------------------------------------------------- the phases


def run_seeded(args, db: Database, kind: str, items: int, concurrency: int, tokens: list[str]) -> list[dict]:
    """`cold` then `steady` on a seeded project, on one freshly started server."""
    slug = slug_for(items)
    configs = []
    reset_project(db, slug)
    server = Server(args, db, kind)
    try:
        log(
            f"== {db.kind} / {server.label}: {items:,} items, {concurrency} annotator(s), load {os.getloadavg()[0]:.2f}"
        )
        server.start()
        with BackendRenicer(args, db):
            if "cold" in args.phases:
                config = run_configuration(
                    args,
                    db,
                    server,
                    slug,
                    items,
                    concurrency,
                    tokens,
                    phase="cold",
                    round_trips=args.cold_round_trips,
                    duration=args.duration + 120,
                )
                log("   cold (first requests of a fresh server):")
                log(describe(config))
                configs.append(config)
            if "steady" in args.phases:
                floor = baseline(server, 50 if args.quick else 200)
                for think_ms in args.think_ms:
                    reset_project(db, slug)
                    config = run_configuration(
                        args,
                        db,
                        server,
                        slug,
                        items,
                        concurrency,
                        tokens,
                        phase="steady",
                        think_ms=think_ms,
                        warmup=args.warmup,
                        round_trips=args.round_trips,
                        duration=args.duration,
                    )
                    config["floor_401_ms"] = floor["ms"]
                    log(f"   steady, think {think_ms:g} ms:")
                    log(describe(config))
                    configs.append(config)
    finally:
        server.stop()
    return configs


def write_native_jsonl(path: Path, rows: int) -> None:
    """Native rows: an id, a prompt and two responses (README: the native shape)."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(1, rows + 1):
            row = {
                "id": f"imported-{n}",
                "prompt": f"Q{n}. {PROMPT_TEXT}",
                "responses": [
                    {"model": "model-1", "content": f"Answer 1 to imported-{n}. {RESPONSE_TEXT}"},
                    {"model": "model-2", "content": f"Answer 2 to imported-{n}. {RESPONSE_TEXT}"},
                ],
            }
            out.write(json.dumps(row) + "\n")


def run_after_import(args, db: Database, kind: str, jsonl: Path) -> tuple[dict, list[dict]]:
    """A fresh database, `manage.py import_items` of the native file, no maintenance, then a fresh server."""
    fresh = db.sibling("_import")
    log(f"== after import: {db.kind} / {kind}: fresh database {fresh.where}, load {os.getloadavg()[0]:.2f}")
    fresh.create(drop_first=fresh.exists())
    configs = []
    try:
        manage(args, fresh, "migrate", "--noinput", capture=True)
        run_django_snippet(args, fresh, PROJECTS_SNIPPET, {"slugs": [IMPORT_SLUG]})
        tokens = create_annotators(args, fresh, max(args.concurrency), [IMPORT_SLUG])
        load_before = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        result = manage(args, fresh, "import_items", IMPORT_SLUG, str(jsonl), "--verbosity", "1", capture=True)
        seconds = time.perf_counter() - started
        imported_at = time.monotonic()
        summary_line = (result.stdout.strip().splitlines() or [""])[-1]
        log(f"   import_items: {seconds:.1f} s: {summary_line}")
        import_facts = {
            "db": db.kind,
            "server": kind,
            "rows": args.import_items,
            "seconds": round(seconds, 1),
            "rows_per_second": round(args.import_items / seconds),
            "output": summary_line,
            "load_average_before": load_before,
        }
        for concurrency in args.concurrency:
            server = Server(args, fresh, kind)
            try:
                server.start()
                with BackendRenicer(args, fresh):
                    since = round(time.monotonic() - imported_at, 1)
                    config = run_configuration(
                        args,
                        fresh,
                        server,
                        IMPORT_SLUG,
                        args.import_items,
                        concurrency,
                        tokens,
                        phase="after-import",
                        round_trips=args.cold_round_trips,
                        duration=args.duration + 120,
                    )
                    config["seconds_since_import"] = since
                    log(f"   after import, {concurrency} annotator(s), first requests ({since} s after the import):")
                    log(describe(config))
                    configs.append(config)
                    if args.after_import_round_trips:
                        config = run_configuration(
                            args,
                            fresh,
                            server,
                            IMPORT_SLUG,
                            args.import_items,
                            concurrency,
                            tokens,
                            phase="after-import-warm",
                            round_trips=args.after_import_round_trips,
                            duration=args.duration,
                        )
                        config["seconds_since_import"] = round(time.monotonic() - imported_at, 1)
                        log("   then, the server warm, still no maintenance:")
                        log(describe(config))
                        configs.append(config)
            finally:
                server.stop()
    finally:
        if not args.keep_import_db:
            fresh.drop()
    return import_facts, configs


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
    result["cprofile"] = buffer.getvalue().replace(str(Path.cwd()) + "/", "").replace(sys.prefix + "/", "")
    Path(out).write_text(json.dumps(result))


def run_profile(args, db: Database, slug: str, token: str) -> dict:
    reset_project(db, slug)
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
            cwd=args.app_dir,
            env=django_env(args, db),
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
    """The issue's targets, judged on what this run measured (each configuration on its own)."""
    targets = []
    for c in configs:
        where = f"{c['db']}, {c['server']}, {c['items']:,} items, {c['concurrency']} annotator(s)"
        rt = c["round_trip_ms"]
        if rt.get("n", 0) == 0:
            continue
        if c["phase"] in ("steady", "after-import-warm") and c["think_ms"] == 0 and c["concurrency"] == 1:
            targets.append(
                {
                    "target": f"{c['phase']}: {where}: round trip p50 <= {TARGET_P50_ONE_ANNOTATOR_MS} ms",
                    "measured": f"{rt['p50']:.2f} ms",
                    "met": rt["p50"] <= TARGET_P50_ONE_ANNOTATOR_MS,
                }
            )
        if c["server"] == "gunicorn" and c["concurrency"] in (1, 8) and c["think_ms"] == 0:
            first = " (first requests included)" if c["phase"] in ("cold", "after-import") else ""
            targets.append(
                {
                    "target": f"{c['phase']}: {where}: round trip p99 <= {TARGET_P99_MS:g} ms{first}",
                    "measured": f"{rt['p99']:.2f} ms (max {rt['max']:.2f})",
                    "met": rt["p99"] <= TARGET_P99_MS,
                }
            )
        if c["errors"]:
            targets.append(
                {
                    "target": f"{c['phase']}: {where}: no errors",
                    "measured": f"{c['errors']} ({c['errors_by_kind']})",
                    "met": False,
                }
            )
    steady = [c for c in configs if c["phase"] == "steady" and c["think_ms"] == 0]
    sizes = sorted({c["items"] for c in steady})
    if len(sizes) > 1:
        for key in sorted({(c["db"], c["server"], c["concurrency"]) for c in steady}):

            def find(items, key=key):
                return next(
                    (c for c in steady if (c["db"], c["server"], c["concurrency"]) == key and c["items"] == items), None
                )

            small, large = find(sizes[0]), find(sizes[-1])
            if small and large and small["round_trip_ms"].get("p50") and large["round_trip_ms"].get("p50"):
                ratio = large["round_trip_ms"]["p50"] / small["round_trip_ms"]["p50"]
                targets.append(
                    {
                        "target": f"steady: {key[0]}, {key[1]}, {key[2]} annotator(s): p50 at {sizes[-1]:,} items "
                        f"<= {TARGET_SCALE_RATIO}x p50 at {sizes[0]:,}",
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


FIRST_COLUMNS = [
    *("db", "server", "items", "annotators", "phase", "s after import", "n", "1st rt", "1st next"),
    *("rt p50", "rt p99", "rt max", "next p50", "next max", "submit p50", "submit max"),
    *("workers' 1st request, max (server)", "errors", "locked (log)", "load before"),
]
STEADY_COLUMNS = [
    *("db", "server", "items", "annotators", "phase", "think ms", "n", "rt/s", "rt p50", "rt p95", "rt p99"),
    *("next p50", "next p99", "submit p50", "submit p99", "server next p50", "server submit p50"),
    *("errors", "locked (log)", "load before", "busy before"),
]
CPU_COLUMNS = [
    *("db", "server", "items", "annotators", "phase", "think ms", "busy", "client", "server", "pg", "other"),
    *("client ms/rt", "server ms/rt", "pg ms/rt"),
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
FIRST_PHASES = ("cold", "after-import")


def first_row(c: dict) -> list:
    rt, nx, sb, first = c["round_trip_ms"], c["next_ms"], c["submit_ms"], c["first_round_trip_ms"] or {}
    workers = [w["client_ms"] for w in c["worker_first_request"].values()]
    workers_server = [w["server_ms"] for w in c["worker_first_request"].values()]
    worker_text = f"{fmt(max(workers))} ({fmt(max(workers_server))}), {len(workers)} workers" if workers else "-"
    return [
        *(c["db"], c["server"], f"{c['items']:,}", c["concurrency"], c["phase"], c.get("seconds_since_import", "-")),
        *(c["round_trips"], fmt(first.get("round_trip")), fmt(first.get("next"))),
        *(fmt(rt.get("p50")), fmt(rt.get("p99")), fmt(rt.get("max")), fmt(nx.get("p50")), fmt(nx.get("max"))),
        *(fmt(sb.get("p50")), fmt(sb.get("max")), worker_text, c["errors"], c["database_locked_in_server_log"]),
        c["load_average_before"][0],
    ]


def steady_row(c: dict) -> list:
    rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
    return [
        *(c["db"], c["server"], f"{c['items']:,}", c["concurrency"], c["phase"], f"{c['think_ms']:g}"),
        *(f"{c['round_trips']:,}", f"{c['round_trips_per_second']:.1f}"),
        *(fmt(rt.get(k)) for k in ("p50", "p95", "p99")),
        *(fmt(nx.get("p50")), fmt(nx.get("p99")), fmt(sb.get("p50")), fmt(sb.get("p99"))),
        *(fmt(c["server_next_ms"].get("p50")), fmt(c["server_submit_ms"].get("p50"))),
        *(c["errors"], c["database_locked_in_server_log"], c["load_average_before"][0]),
        f"{c['machine_busy_before']:.0%}",
    ]


def markdown(report: dict) -> str:
    m = report["machine"]
    pg_settings = ", ".join(f"{k}={v}" for k, v in m["postgresql_settings"].items())
    code = report["code"]["served"]
    configs = report["configurations"]
    lines = [
        "# API latency: `next` + `submit` round trips",
        "",
        f"Run {report['started_at']} ({report['mode']}, {report['duration_seconds']:.0f} s): `{report['command']}`.",
        "",
        f"- Code served: {code.get('app_dir')} at commit {code.get('commit')} ({code.get('subject')})"
        f"{', work tree dirty' if code.get('work_tree_dirty') else ', clean work tree'}"
        f"{' (uncommitted app changes)' if code.get('uncommitted_app_changes') else ''}, "
        f"fingerprint {code.get('fingerprint')}.",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux {m['kernel']}.",
        f"- Software: Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}, psycopg {m['psycopg']}, "
        f"SQLite {m['sqlite']}, {(m['postgresql'] or 'PostgreSQL not reached').split(' on ')[0]} ({pg_settings}).",
        f"- Load average at start: {' / '.join(str(x) for x in m['load_average_at_start'])} (1/5/15 min); "
        f"machine busy in the second before: {m['cpu_busy_fraction_at_start']:.0%}; at the end: "
        f"{' / '.join(str(x) for x in report['load_average_at_end'])}. Each row below has the 1-min load average "
        "before it.",
        f"- Servers: {'; '.join(f'`{s}`' for s in report['server']['commands'])}; DEBUG=0, "
        f"DB_CONN_MAX_AGE={report['server']['conn_max_age']}. Databases: {report['database']['description']}.",
        f"- Client: {report['client']}.",
        *(
            [
                f"- Priority: the benchmark, the server and the PostgreSQL backends serving it ran at nice "
                f"{report['server']['nice']}, ahead of other work on the machine."
            ]
            if report["server"].get("nice")
            else []
        ),
        f"- Phases: {report['budget']['note']}",
        "",
        "Milliseconds, measured by the client (connect, request, response, close); rt = next + submit.",
    ]
    first = [c for c in configs if c["phase"] in FIRST_PHASES]
    if first:
        lines += [
            "",
            "## First requests: a server just started (`cold`), and right after an import (`after-import`)",
            "",
            f"The first {report['budget']['cold_round_trips']} round trips of a server that has received no "
            "request, the annotators released together, no warm-up. `1st`: the first round trip begun. "
            "`workers' 1st request`: the slowest first request any gunicorn worker served, client time "
            "(gunicorn's own time in brackets).",
            "",
            row(FIRST_COLUMNS),
            row(["---"] * 5 + ["---:"] * (len(FIRST_COLUMNS) - 5)),
            *(row(first_row(c)) for c in first),
        ]
    steady = [c for c in configs if c["phase"] not in FIRST_PHASES]
    if steady:
        lines += [
            "",
            "## Warm: `steady` (after the reset, maintenance and warm-up) and `after-import-warm` "
            "(after the first requests, no maintenance)",
            "",
            "`server` columns: the time gunicorn's access log gives for the same requests (reading the request "
            "to writing the response); the difference is connecting, queueing for a worker and the client's "
            "own scheduling.",
            "",
            row(STEADY_COLUMNS),
            row(["---"] * 5 + ["---:"] * (len(STEADY_COLUMNS) - 5)),
            *(row(steady_row(c)) for c in steady),
        ]
    if report["imports"]:
        lines += [
            "",
            "## Imports (`manage.py import_items`, native JSON Lines, into a fresh database)",
            "",
            row(["db", "server after", "rows", "seconds", "rows/s", "load before", "output"]),
            row(["---", "---", "---:", "---:", "---:", "---:", "---"]),
        ]
        for imp in report["imports"]:
            lines.append(
                row(
                    [
                        *(imp["db"], imp["server"], f"{imp['rows']:,}", imp["seconds"], f"{imp['rows_per_second']:,}"),
                        *(imp["load_average_before"][0], imp["output"]),
                    ]
                )
            )
    errors = [c for c in configs if c["errors"] or c["database_locked_in_server_log"]]
    if errors:
        lines += ["", "## Errors", ""]
        for c in errors:
            samples = "; ".join(
                f"{e.get('where')} {e.get('status')}: {str(e.get('body', e.get('error', '')))[:80]!r}"
                for e in c["error_samples"][:2]
            )
            lines.append(
                f"- {c['db']}, {c['server']}, {c['items']:,} items, {c['concurrency']} annotator(s), {c['phase']}: "
                f"{c['errors']} errors {c['errors_by_kind']}, 'database is locked' "
                f"{c['database_locked_in_server_log']} times in the server log. {samples}"
            )
    lines += [
        "",
        "CPU during each measured phase, in cores (of 2) and ms of CPU per round trip. `server` counts gunicorn "
        "(master and workers) or runserver; `pg` the backends serving the benchmark database; `other` is "
        "everything else on the machine (other work running at the same time).",
        "",
        row(CPU_COLUMNS),
        row(["---"] * 5 + ["---:"] * (len(CPU_COLUMNS) - 5)),
    ]
    for c in configs:
        cpu = c["cpu"]
        lines.append(
            row(
                [
                    *(c["db"], c["server"], f"{c['items']:,}", c["concurrency"], c["phase"], f"{c['think_ms']:g}"),
                    *(cpu["machine_busy_cores"], cpu["client_cores"]),
                    *(cpu["server_cores"], cpu["postgres_backends_cores"], cpu["other_cores"]),
                    *(cpu["client_ms_per_round_trip"], cpu["server_ms_per_round_trip"]),
                    cpu["postgres_ms_per_round_trip"],
                ]
            )
        )
    floors = [c for c in configs if c.get("floor_401_ms")]
    if floors:
        lines += [
            "",
            "Floor over HTTP, same server, new connection each, POST without a token -> 401 (no SQL), p50 ms: "
            + ", ".join(
                f"{c['db']}/{c['server']}/{c['items']:,}/{c['concurrency']}: {fmt(c['floor_401_ms'].get('p50'))}"
                for c in floors
                if c["think_ms"] == report["budget"]["think_ms"][0]
            )
            + ".",
        ]
    lines += ["", "## Targets", ""]
    if report["targets"]:
        lines += [row(["target", "measured", "met"]), row(["---"] * 3)]
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
    code = report["code"]["served"]
    log("")
    log("== machine")
    log(f"   {m['cpu_model']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Linux {m['kernel']}")
    log(f"   load average at start {m['load_average_at_start']}, busy {m['cpu_busy_fraction_at_start']:.0%}")
    log(f"   load average at end {report['load_average_at_end']}")
    log(f"   top processes at start: {m['top_processes_at_start'][:4]}")
    log(f"   Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']}, psycopg {m['psycopg']}")
    log(f"   SQLite {m['sqlite']}; {m['postgresql']}")
    log(f"   {m['postgresql_settings']}")
    log(
        f"   code served: {code.get('app_dir')} {code.get('commit')} "
        f"({'dirty' if code.get('work_tree_dirty') else 'clean'} work tree)"
    )
    log("")
    log("== results, ms (client time; rt = next + submit; each request on a new connection)")
    header = f"{'db':<10} {'server':<9} {'phase':<17} {'items':>9} {'ann':>3} {'n':>5} {'rt/s':>6} | "
    header += f"{'1st rt':>7} | {'rt p50':>7} {'p99':>7} {'max':>7} | {'next50':>7} {'p99':>7} {'max':>7} | "
    header += f"{'sub50':>7} {'p99':>7} {'max':>7} | err lock load"
    log(header)
    for c in report["configurations"]:
        rt, nx, sb = c["round_trip_ms"], c["next_ms"], c["submit_ms"]
        phase = c["phase"] + (f"/{c['think_ms']:g}" if c["think_ms"] else "")
        log(
            f"{c['db']:<10} {c['server']:<9} {phase:<17} {c['items']:>9,} {c['concurrency']:>3} {c['round_trips']:>5} "
            f"{c['round_trips_per_second']:>6.1f} | {fmt((c['first_round_trip_ms'] or {}).get('round_trip')):>7} | "
            + " | ".join(" ".join(f"{fmt(d.get(k)):>7}" for k in ("p50", "p99", "max")) for d in (rt, nx, sb))
            + f" | {c['errors']:>3} {c['database_locked_in_server_log']:>4} {c['load_average_before'][0]}"
        )
    for imp in report["imports"]:
        log(f"   import ({imp['db']}): {imp['rows']:,} rows in {imp['seconds']} s: {imp['output']}")
    log("")
    log("== targets")
    for target in report["targets"]:
        log(f"   [{'MET' if target['met'] else 'NOT MET'}] {target['target']}: {target['measured']}")
    for slug, prof in (report.get("profile") or {}).items():
        log("")
        log(f"== in-process (PostgreSQL), {slug}")
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
    if db_name(args.db_url) in ("", "postgres", "template0", "template1"):
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
    code_at_start = code_state(args.app_dir)
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
        code_at_end = code_state(args.app_dir)
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
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(report))
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
