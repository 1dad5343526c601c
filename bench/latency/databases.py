"""What the servers are pointed at, and the benchmark's own work on it: creating, migrating,
seeding (SQL), the annotators and their tokens (through Django), resetting a project."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import common
from common import HOST, log

ANNOTATOR_PREFIX = "bench-annotator-"

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


def django_env(args, db: Database) -> dict:
    """The server's environment: DEBUG=0 and exactly one way to the database (no inherited DATABASE_URL)."""
    return common.django_env(
        db.env(),
        ALLOWED_HOSTS=HOST,
        DB_CONN_MAX_AGE=str(args.conn_max_age),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="feedback.settings",
        PYTHONPATH=str(args.app_dir),
    )


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
        return common.db_name(self.url) if self.engine == "postgres" else str(self.path)

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
        return common.pg_exists(self.url)

    def create(self, drop_first: bool) -> None:
        if self.engine == "sqlite":
            if drop_first:
                self.drop()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return
        common.pg_create(self.url, drop_first=drop_first)

    def drop(self) -> None:
        if self.engine == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            return
        common.pg_drop(self.url)

    @contextlib.contextmanager
    def connect(self):
        """The benchmark's own connection (autocommit); `execute` takes %s placeholders on both engines."""
        if self.engine == "postgres":
            with common.pg_connect(self.url) as conn:
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
            return Database(self.kind, url=common.db_url_with_name(self.url, common.db_name(self.url) + suffix))
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
try:
    from labeling.services.tokens import token_create
except ImportError:  # a checkout (--app-dir) from before the tokens module
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
        with common.pg_connect(self.db.url) as conn:
            while not self.stop_event.is_set():
                for pid in common.backend_pids(conn):
                    with contextlib.suppress(OSError):
                        if os.getpriority(os.PRIO_PROCESS, pid) != self.args.nice:
                            os.setpriority(os.PRIO_PROCESS, pid, self.args.nice)
                self.stop_event.wait(0.5)


def backend_pids(db: Database) -> list[int]:
    if db.engine != "postgres":
        return []
    with common.pg_connect(db.url) as conn:
        return common.backend_pids(conn)
