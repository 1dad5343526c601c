"""The projects of the dashboard and stats benchmarks (`dashboard_time.py`, `stats_memory.py`),
seeded in SQL on PostgreSQL: pairwise, overlap 3, so N judgments are N/3 items of two responses
each, from 8 models of known strength; 30 annotators (one always picks the left side, one answers
in about a second), 50 gold items every annotator judged, an imported reference on every item
(right 90% of the time), judgments spread over 30 days."""

from __future__ import annotations

import os
import sys
import tempfile
import time

import common
from common import ROOT, log

ANNOTATORS = 30
GOLD_ITEMS = 50
OVERLAP = 3
MODELS = 8
# Natural-log strengths of model-1 .. model-8: each one a little better than the previous.
STRENGTH_STEP = 0.25
TIE_SHARE = 0.1
# Each item has a better response (drawn with the Bradley-Terry probability of its two
# models); an annotator names it with this probability.
ACCURACY = 0.85
DAYS = 30
MANAGER = "dash-manager"


def slug_for(judgments: int) -> str:
    return f"dash-{judgments // 1000}k"


def database_prepare(url: str, reuse: bool) -> bool:
    """Create the database (dropping an old one unless reusing); True when it already existed and is kept."""
    exists = common.pg_exists(url)
    if exists and reuse:
        return True
    common.pg_create(url, drop_first=exists)
    return False


def django_setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback.settings")
    os.environ.setdefault("SECRET_KEY", "bench-not-secret")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost")
    os.environ.setdefault("SECURE_COOKIES", "0")
    # A cache of its own: the cold runs clear it, and must not clear a development server's.
    os.environ.setdefault("CACHE_DIR", tempfile.mkdtemp(prefix="dashboard-bench-cache-"))
    # Refreshes are queued (a worker would run them); the recompute is timed on its own.
    os.environ.setdefault("TASKS_BACKEND", "database")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed_project(judgments: int) -> dict:
    """The project, its members and `judgments` judgments, all in SQL; returns what was made."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from labeling.models import Judgment, Membership, Project

    slug = slug_for(judgments)
    project = Project.objects.filter(slug=slug).first()
    if project is not None and Judgment.objects.filter(project=project).exists():
        log(f"== {slug}: already seeded")
        return {"slug": slug, "seeded_now": False}
    project = project or Project.objects.create(slug=slug, title=f"Dashboard bench {slug}", overlap=OVERLAP)
    User = get_user_model()
    manager = User.objects.filter(username=MANAGER).first() or User.objects.create_user(MANAGER, password="x" * 12)
    Membership.objects.get_or_create(project=project, user=manager, defaults={"role": "manager"})
    annotator_ids = []
    for index in range(ANNOTATORS):
        user, _ = User.objects.get_or_create(username=f"dash-annotator-{index:02d}")
        Membership.objects.get_or_create(project=project, user=user, defaults={"role": "annotator"})
        annotator_ids.append(user.pk)
    items = -(-(judgments - GOLD_ITEMS * ANNOTATORS) // OVERLAP)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SELECT setseed(0.42)")
        log(f"== {slug}: {items:,} items + {GOLD_ITEMS} gold, 2 responses each")
        _seed_items(cursor, project.pk, items)
        log(f"   items and responses: {time.perf_counter() - started:.1f} s")
        _seed_judgments(cursor, project.pk, annotator_ids, judgments)
        log(f"   assignments and judgments: {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    seeded = Judgment.objects.filter(project=project).count()
    return {
        "slug": slug,
        "seeded_now": True,
        "items": items + GOLD_ITEMS,
        "judgments": seeded,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _seed_items(cursor, project_id: int, items: int) -> None:
    # Model of each position: two different models per item, all pairs over the items.
    cursor.execute(
        """
        WITH new_items AS (
            INSERT INTO labeling_item
                (project_id, external_id, prompt, metadata, reference, is_gold, gold_answer,
                 priority, target, votes, filled, is_complete, created_at)
            SELECT %(project)s, 'item-' || g,
                   jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question ' || g || '?')),
                   '{}'::jsonb,
                   NULL,  -- set with the judgments below
                   g <= %(gold)s,
                   CASE WHEN g <= %(gold)s THEN '[[0], [1]]'::jsonb END,
                   0, CASE WHEN g <= %(gold)s THEN %(annotators)s ELSE %(overlap)s END, 0, 0, false, now()
            FROM generate_series(1, %(total)s) AS g
            ORDER BY g
            RETURNING id, external_id
        )
        INSERT INTO labeling_response (item_id, position, model, content, metadata)
        SELECT i.id, p.pos,
               'model-' || (1 + CASE WHEN p.pos = 0 THEN (i.id * 7) %% %(models)s
                                     ELSE (i.id * 7 + 1 + i.id %% (%(models)s - 1)) %% %(models)s END),
               'Answer ' || (p.pos + 1) || ' to ' || i.external_id, '{}'::jsonb
        FROM new_items AS i CROSS JOIN (VALUES (0), (1)) AS p(pos)
        ORDER BY i.id, p.pos
        """,
        {
            "project": project_id,
            "total": items + GOLD_ITEMS,
            "gold": GOLD_ITEMS,
            "annotators": ANNOTATORS,
            "overlap": OVERLAP,
            "models": MODELS,
        },
    )


SEEDED_COLUMNS = {
    "labeling_assignment": {
        "id",
        "project_id",
        "item_id",
        "annotator_id",
        "state",
        "shown_order",
        "skip_reason",
        "created_at",
        "expires_at",
        "finished_at",
    },
    "labeling_judgment": {
        "id",
        "assignment_id",
        "project_id",
        "item_id",
        "annotator_id",
        "ranking",
        "strength",
        "both_bad",
        "rationale",
        "criteria",
        "seconds",
        "late",
        "created_at",
        "updated_at",
    },
}


def _extra_columns(cursor, table: str, known: dict[str, str]) -> tuple[str, str]:
    """Columns added by later migrations that need a value: SQL for the column list and the values.

    Django keeps defaults in Python, not in the schema, so a new NOT NULL column must be
    named here; the benchmark stops with a clear message when one is not.
    """
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    )
    extra = sorted({row[0] for row in cursor.fetchall()} - SEEDED_COLUMNS[table])
    unknown = [name for name in extra if name not in known]
    if unknown:
        raise SystemExit(f"{table} has NOT NULL columns the benchmark does not seed: {unknown}; add them here.")
    return "".join(f", {name}" for name in extra), "".join(f", {known[name]}" for name in extra)


def _seed_judgments(cursor, project_id: int, annotator_ids: list[int], judgments: int) -> None:
    """One assignment and one judgment per (item, slot); gold items get every annotator.

    Annotator 0 always picks the left response; annotator 1 answers in about a second;
    the others name the item's better response (drawn once per item with the
    Bradley-Terry probability of its models) 85% of the time, and tie 10% of the time.
    """
    cursor.execute(
        """
        CREATE TEMP TABLE bench_votes ON COMMIT DROP AS
        WITH pairs AS (
            SELECT i.id AS item_id, i.is_gold, i.external_id,
                   r0.id AS r0, r1.id AS r1,
                   substr(r0.model, 7)::int AS m0, substr(r1.model, 7)::int AS m1,
                   row_number() OVER (ORDER BY i.id) AS n,
                   random() AS u_item
            FROM labeling_item i
            JOIN labeling_response r0 ON r0.item_id = i.id AND r0.position = 0
            JOIN labeling_response r1 ON r1.item_id = i.id AND r1.position = 1
            WHERE i.project_id = %(project)s
        ), slots AS (
            SELECT p.*, s.slot,
                   (%(annotators)s::bigint[])[1 + ((p.n * %(overlap)s + s.slot) %% %(count)s)] AS annotator_id,
                   (p.n * %(overlap)s + s.slot) %% %(count)s AS annotator_index
            FROM pairs p
            JOIN LATERAL generate_series(0, CASE WHEN p.is_gold THEN %(count)s - 1 ELSE %(overlap)s - 1 END)
                AS s(slot) ON true
        )
        SELECT item_id, is_gold, r0, r1, annotator_id, annotator_index,
               random() < 0.5 AS r0_left,
               random() AS u_tie,
               random() AS u_win,
               u_item < 1.0 / (1.0 + exp(-(m0 - m1) * %(step)s)) AS r0_better,
               1 + floor(random() * 3)::int AS strength,
               random() < 0.05 AS both_bad,
               now() - (random() * %(days)s) * interval '1 day' AS created_at
        FROM slots
        """,
        {
            "project": project_id,
            "annotators": annotator_ids,
            "count": len(annotator_ids),
            "overlap": OVERLAP,
            "step": STRENGTH_STEP,
            "days": DAYS,
        },
    )
    cursor.execute(
        """
        CREATE TEMP TABLE bench_judgments ON COMMIT DROP AS
        SELECT v.*, gen_random_uuid() AS assignment_id,
               CASE
                   WHEN v.annotator_index = 0 THEN (CASE WHEN v.r0_left THEN 'r0' ELSE 'r1' END)
                   WHEN v.u_tie < %(ties)s THEN 'tie'
                   WHEN v.is_gold THEN (CASE WHEN v.u_win < 0.9 THEN 'r0' ELSE 'r1' END)
                   WHEN (v.u_win < %(accuracy)s) = v.r0_better THEN 'r0'
                   ELSE 'r1'
               END AS outcome,
               CASE WHEN v.annotator_index = 1 THEN 0.5 + random() ELSE 4 + random() * 40 END AS seconds
        FROM bench_votes v
        """,
        {"ties": TIE_SHARE, "accuracy": ACCURACY},
    )
    names, values = _extra_columns(cursor, "labeling_assignment", {"queued": "false"})
    # Column names come from information_schema and the table above; values are parameters.
    cursor.execute(
        f"""
        INSERT INTO labeling_assignment
            (id, project_id, item_id, annotator_id, state, shown_order, skip_reason, created_at, expires_at,
             finished_at{names})
        SELECT assignment_id, %(project)s, item_id, annotator_id, 'submitted',
               CASE WHEN r0_left THEN jsonb_build_array(r0, r1) ELSE jsonb_build_array(r1, r0) END,
               '', created_at - seconds * interval '1 second', created_at + interval '30 minutes', created_at{values}
        FROM bench_judgments
        """,  # noqa: S608
        {"project": project_id},
    )
    names, values = _extra_columns(cursor, "labeling_judgment", {"revision": "1"})
    # Column names come from information_schema and the table above; values are parameters.
    cursor.execute(
        f"""
        INSERT INTO labeling_judgment
            (id, assignment_id, project_id, item_id, annotator_id, ranking, strength, both_bad, rationale,
             criteria, seconds, late, created_at, updated_at{names})
        SELECT gen_random_uuid(), assignment_id, %(project)s, item_id, annotator_id,
               CASE outcome
                   WHEN 'r0' THEN jsonb_build_array(jsonb_build_array(r0), jsonb_build_array(r1))
                   WHEN 'r1' THEN jsonb_build_array(jsonb_build_array(r1), jsonb_build_array(r0))
                   ELSE jsonb_build_array(jsonb_build_array(r0, r1))
               END,
               CASE WHEN outcome = 'tie' THEN NULL ELSE strength END,
               both_bad, '', '{{}}'::jsonb, seconds, false, created_at, created_at{values}
        FROM bench_judgments
        """,  # noqa: S608
        {"project": project_id},
    )
    # The imported reference names the item's better response, as a careful labeler would 90% of the time.
    cursor.execute(
        """
        UPDATE labeling_item i
        SET reference = CASE WHEN v.r0_better = (random() < 0.9) THEN '[[0], [1]]'::jsonb ELSE '[[1], [0]]'::jsonb END
        FROM (SELECT DISTINCT item_id, r0_better FROM bench_votes) v
        WHERE v.item_id = i.id
        """
    )
    cursor.execute(
        """
        UPDATE labeling_item i SET votes = c.n, filled = c.n, is_complete = c.n >= i.target
        FROM (SELECT item_id, count(*) AS n FROM bench_judgments GROUP BY item_id) c
        WHERE c.item_id = i.id
        """
    )
