"""The judgments an export reads, seeded with SQL: items with two responses, one submitted
assignment and one judgment each (overlap 1), by 20 annotators; the same rows on PostgreSQL
and on SQLite."""

import contextlib
import hashlib
import sqlite3
import time
from pathlib import Path

from common import pg_connect

ANNOTATORS = 20

SEED_SQL = [
    """
    INSERT INTO labeling_item (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                               priority, target, votes, filled, is_complete, withdrawn_at, created_at)
    SELECT %(project)s, 'q' || n,
           jsonb_build_array(jsonb_build_object('role', 'user', 'content',
               'Question ' || n || ': ' || repeat(md5(n::text) || ' ', (2 + n %% 6)::int))),
           '{}'::jsonb, NULL, false, NULL, 0, 1, 1, 1, true, NULL, now() - interval '2 days'
    FROM generate_series(1, %(rows)s) AS n
    """,
    """
    INSERT INTO labeling_response (item_id, position, model, content, metadata)
    SELECT i.id, v.position, 'model-' || ((i.id + v.position) %% 8),
           'Answer ' || v.position || ' to ' || i.external_id || '. '
               || repeat(md5(i.id::text || ':' || v.position) || ' ', (6 + (i.id * 7 + v.position) %% 12)::int),
           '{}'::jsonb
    FROM labeling_item AS i CROSS JOIN (VALUES (0), (1)) AS v(position)
    WHERE i.project_id = %(project)s
    """,
    """
    CREATE TEMP TABLE bench_pairs AS
    SELECT r.item_id, min(r.id) FILTER (WHERE r.position = 0) AS r0, min(r.id) FILTER (WHERE r.position = 1) AS r1
    FROM labeling_response AS r JOIN labeling_item AS i ON i.id = r.item_id
    WHERE i.project_id = %(project)s GROUP BY r.item_id
    """,
    """
    INSERT INTO labeling_assignment (id, project_id, item_id, annotator_id, state, queued, shown_order,
                                     skip_reason, created_at, expires_at, finished_at)
    SELECT md5('assignment:' || p.item_id)::uuid, %(project)s, p.item_id, u.id, 'submitted', false,
           CASE WHEN p.item_id %% 2 = 0 THEN jsonb_build_array(p.r0, p.r1) ELSE jsonb_build_array(p.r1, p.r0) END,
           '', now() - interval '1 day', now() - interval '1 day' + interval '30 minutes',
           now() - interval '1 day' + (p.item_id %% 600) * interval '1 second'
    FROM bench_pairs AS p
    JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM auth_user
          WHERE username LIKE 'bench-annotator-%%') AS u ON u.k = p.item_id %% %(annotators)s
    """,
    """
    INSERT INTO labeling_judgment (id, assignment_id, project_id, item_id, annotator_id, ranking, strength,
                                   both_bad, rationale, criteria, seconds, visible_seconds, revision, late,
                                   created_at, updated_at)
    SELECT md5('judgment:' || a.item_id)::uuid, a.id, %(project)s, a.item_id, a.annotator_id,
           CASE WHEN a.item_id %% 3 = 0
                THEN jsonb_build_array(jsonb_build_array(p.r1), jsonb_build_array(p.r0))
                ELSE jsonb_build_array(jsonb_build_array(p.r0), jsonb_build_array(p.r1)) END,
           1 + a.item_id %% 3, false, '', '{}'::jsonb, 5 + a.item_id %% 90, NULL, 1, false,
           a.finished_at, a.finished_at
    FROM labeling_assignment AS a JOIN bench_pairs AS p ON p.item_id = a.item_id
    WHERE a.project_id = %(project)s
    """,
    "DROP TABLE bench_pairs",
]


def seed_judgments(url: str, slug: str, rows: int) -> float:
    """`rows` items with two responses and one submitted judgment each, in project `slug` of database `url`."""
    started = time.perf_counter()
    with pg_connect(url, autocommit=False) as conn:
        project = conn.execute("SELECT id FROM labeling_project WHERE slug = %s", (slug,)).fetchone()[0]
        conn.execute(
            """
            INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,
                                   is_staff, is_active, date_joined)
            SELECT '!', NULL, false, 'bench-annotator-' || lpad(u::text, 3, '0'), '', '', '', false, true, now()
            FROM generate_series(1, %(annotators)s) AS u
            ON CONFLICT (username) DO NOTHING
            """,
            {"annotators": ANNOTATORS},
        )
        conn.execute(
            """
            INSERT INTO labeling_membership (project_id, user_id, role, created_at)
            SELECT %(project)s, id, 'annotator', now() FROM auth_user WHERE username LIKE 'bench-annotator-%%'
            """,
            {"project": project},
        )
        for statement in SEED_SQL:
            conn.execute(statement, {"project": project, "rows": rows, "annotators": ANNOTATORS})
        conn.commit()
    with pg_connect(url) as conn:
        conn.execute("ANALYZE")
    return round(time.perf_counter() - started, 1)


# SEED_SQL's rows in SQLite's SQL, stored as Django stores them there: JSON as `json.dumps` writes it
# (`[[12], [34]]`), UUIDs as 32 hex digits, booleans as 0/1; `md5` and `repeat` are Python
# functions of the seeding connection (`seed_sqlite_judgments`).
SQLITE_SEED_SQL = [
    """
    INSERT INTO labeling_item (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                               priority, target, votes, filled, is_complete, withdrawn_at, created_at)
    WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :rows)
    SELECT :project, 'q' || n,
           '[{"role": "user", "content": "Question ' || n || ': ' || repeat(md5(n) || ' ', 2 + n % 6) || '"}]',
           '{}', NULL, 0, NULL, 0, 1, 1, 1, 1, NULL, datetime('now', '-2 days')
    FROM s
    """,
    """
    INSERT INTO labeling_response (item_id, position, model, content, metadata)
    SELECT i.id, v.position, 'model-' || ((i.id + v.position) % 8),
           'Answer ' || v.position || ' to ' || i.external_id || '. '
               || repeat(md5(i.id || ':' || v.position) || ' ', 6 + (i.id * 7 + v.position) % 12),
           '{}'
    FROM labeling_item AS i CROSS JOIN (SELECT 0 AS position UNION ALL SELECT 1) AS v
    WHERE i.project_id = :project ORDER BY i.id, v.position
    """,
    "CREATE TEMP TABLE bench_pairs (item_id INTEGER PRIMARY KEY, r0 INTEGER, r1 INTEGER)",
    """
    INSERT INTO bench_pairs
    SELECT r.item_id, min(r.id) FILTER (WHERE r.position = 0), min(r.id) FILTER (WHERE r.position = 1)
    FROM labeling_response AS r JOIN labeling_item AS i ON i.id = r.item_id
    WHERE i.project_id = :project GROUP BY r.item_id
    """,
    """
    INSERT INTO labeling_assignment (id, project_id, item_id, annotator_id, state, queued, shown_order,
                                     skip_reason, created_at, expires_at, finished_at)
    SELECT md5('assignment:' || p.item_id), :project, p.item_id, u.id, 'submitted', 0,
           CASE WHEN p.item_id % 2 = 0 THEN '[' || p.r0 || ', ' || p.r1 || ']'
                ELSE '[' || p.r1 || ', ' || p.r0 || ']' END,
           '', datetime('now', '-1 day'), datetime('now', '-1 day', '+30 minutes'),
           datetime('now', '-1 day', '+' || (p.item_id % 600) || ' seconds')
    FROM bench_pairs AS p
    JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM auth_user
          WHERE username LIKE 'bench-annotator-%') AS u ON u.k = p.item_id % :annotators
    """,
    """
    INSERT INTO labeling_judgment (id, assignment_id, project_id, item_id, annotator_id, ranking, strength,
                                   both_bad, rationale, criteria, seconds, visible_seconds, revision, late,
                                   created_at, updated_at)
    SELECT md5('judgment:' || a.item_id), a.id, :project, a.item_id, a.annotator_id,
           CASE WHEN a.item_id % 3 = 0 THEN '[[' || p.r1 || '], [' || p.r0 || ']]'
                ELSE '[[' || p.r0 || '], [' || p.r1 || ']]' END,
           1 + a.item_id % 3, 0, '', '{}', 5 + a.item_id % 90, NULL, 1, 0, a.finished_at, a.finished_at
    FROM labeling_assignment AS a JOIN bench_pairs AS p ON p.item_id = a.item_id
    WHERE a.project_id = :project
    """,
    "DROP TABLE bench_pairs",
]


def seed_sqlite_judgments(path: Path, slug: str, rows: int) -> float:
    """`seed_judgments` for the SQLite file at `path`."""
    started = time.perf_counter()
    conn = sqlite3.connect(path)
    try:
        md5 = lambda value: hashlib.md5(str(value).encode(), usedforsecurity=False).hexdigest()  # noqa: E731
        conn.create_function("md5", 1, md5, deterministic=True)
        conn.create_function("repeat", 2, lambda text, count: text * count, deterministic=True)
        project = conn.execute("SELECT id FROM labeling_project WHERE slug = ?", (slug,)).fetchone()[0]
        conn.execute(
            """
            INSERT OR IGNORE INTO auth_user (password, last_login, is_superuser, username, first_name, last_name,
                                             email, is_staff, is_active, date_joined)
            WITH RECURSIVE s(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM s WHERE u < :annotators)
            SELECT '!', NULL, 0, 'bench-annotator-' || printf('%03d', u), '', '', '', 0, 1, datetime('now') FROM s
            """,
            {"annotators": ANNOTATORS},
        )
        conn.execute(
            """
            INSERT INTO labeling_membership (project_id, user_id, role, created_at)
            SELECT :project, id, 'annotator', datetime('now') FROM auth_user WHERE username LIKE 'bench-annotator-%'
            """,
            {"project": project},
        )
        for statement in SQLITE_SEED_SQL:
            conn.execute(statement, {"project": project, "rows": rows, "annotators": ANNOTATORS})
        conn.commit()
        conn.execute("ANALYZE")
    finally:
        conn.close()
    return round(time.perf_counter() - started, 1)


def seeded(url: str, slug: str, rows: int) -> bool:
    """Whether the database `url` already holds project `slug` with `rows` judgments (a --keep-db run's)."""
    import psycopg

    with contextlib.suppress(psycopg.Error), pg_connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM labeling_judgment AS j JOIN labeling_project AS p ON p.id = j.project_id"
            " WHERE p.slug = %s",
            (slug,),
        ).fetchone()
        return found[0] == rows
    return False
