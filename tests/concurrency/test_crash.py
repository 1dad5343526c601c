"""Crash drills on PostgreSQL: a process killed in the middle of an import, an export or a
stream of submits leaves the whole write or nothing, and the next run succeeds."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import Count, Q

from labeling.models import Assignment, Item, Judgment, Project, Response
from tests.factories import MembershipFactory, ProjectFactory

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def _environment() -> dict:
    database = django_settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    return {**os.environ, "DATABASE_URL": url}


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _kill_after(process: subprocess.Popen, seconds: float) -> None:
    time.sleep(seconds)
    _kill(process)


def _kill_when(process: subprocess.Popen, busy, *, settle: float = 0.3, timeout: float = 120) -> None:
    """SIGKILL the process once `busy()` says it is in the middle of its work (and `settle` s later)."""
    deadline = time.monotonic() + timeout
    while not busy() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(settle)
    _kill(process)


def _kill(process: subprocess.Popen) -> None:
    assert process.poll() is None, "the process finished before it could be killed; give it more work"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _writing_to_the_database() -> bool:
    """Another session of the test database has a write transaction open (the import's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND backend_xid IS NOT NULL"
        )
        return cursor.fetchone()[0] > 0


def test_an_import_killed_midway_leaves_nothing_and_the_next_run_succeeds(tmp_path):
    project = ProjectFactory(slug="crash-import")
    rows = 150_000
    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        for n in range(rows):
            handle.write(json.dumps({"id": f"r{n}", "prompt": f"Question {n}?", "responses": [f"yes {n}", f"no {n}"]}))
            handle.write("\n")
    # Killed inside its one transaction, once it has begun writing rows.
    _kill_when(_start("manage.py", "import_items", project.slug, str(path)), _writing_to_the_database)
    assert Item.objects.filter(project=project).count() == 0
    assert Response.objects.filter(item__project=project).count() == 0
    finished = subprocess.run(
        [sys.executable, "manage.py", "import_items", project.slug, str(path)],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert Item.objects.filter(project=project).count() == rows


def _judged_project(slug: str, items: int) -> Project:
    project = ProjectFactory(slug=slug, overlap=1)
    annotator = MembershipFactory(project=project).user
    created = Item.objects.bulk_create(
        Item(project=project, external_id=f"i{n}", prompt=[{"role": "user", "content": f"q{n}"}], target=1, votes=1)
        for n in range(items)
    )
    responses = Response.objects.bulk_create(
        Response(item=item, position=position, content=f"answer {position} " * 20, model=f"m{position}")
        for item in created
        for position in range(2)
    )
    by_item = {}
    for response in responses:
        by_item.setdefault(response.item_id, []).append(response.pk)
    assignments = Assignment.objects.bulk_create(
        Assignment(
            project=project,
            item=item,
            annotator=annotator,
            state=Assignment.State.SUBMITTED,
            shown_order=by_item[item.pk],
            expires_at=item.created_at,
        )
        for item in created
    )
    Judgment.objects.bulk_create(
        Judgment(
            assignment=assignment,
            project=project,
            item_id=assignment.item_id,
            annotator=annotator,
            ranking=[[pk] for pk in assignment.shown_order],
        )
        for assignment in assignments
    )
    return project


def test_an_export_killed_midway_leaves_no_export_and_the_next_run_succeeds(tmp_path):
    project = _judged_project("crash-export", 100_000)
    out = tmp_path / "export"
    # Killed while it writes beside its final place (the staging folder exists, the export does not yet).
    staging = lambda: any(tmp_path.glob(".export-*"))  # noqa: E731
    _kill_when(_start("manage.py", "export_preferences", project.slug, "--out", str(out)), staging, settle=0.2)
    assert not out.exists(), "a killed export left a partial folder where the export belongs"
    finished = subprocess.run(
        [sys.executable, "manage.py", "export_preferences", project.slug, "--out", str(out)],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert (out / "dataset_dict.json").exists()


SUBMITTER = """
import django, sys
django.setup()
from django.contrib.auth import get_user_model
from labeling.models import Project
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
project = Project.objects.get(slug=sys.argv[1])
user = get_user_model().objects.get(username=sys.argv[2])
print("ready", flush=True)
while (assignment := assignment_next(project=project, annotator=user)) is not None:
    ranking = ranking_from_choice(assignment=assignment, choice="A")
    judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=ranking)
"""


def test_submits_killed_midway_leave_consistent_counts():
    project = ProjectFactory(slug="crash-submit", overlap=1)
    annotator = MembershipFactory(project=project, user__username="crashy").user
    created = Item.objects.bulk_create(
        Item(project=project, external_id=f"i{n}", prompt=[{"role": "user", "content": f"q{n}"}], target=1)
        for n in range(5000)
    )
    Response.objects.bulk_create(
        Response(item=item, position=position, content=f"a{position}") for item in created for position in range(2)
    )
    process = _start("-c", SUBMITTER, project.slug, annotator.username)
    assert process.stdout.readline().strip() == b"ready"
    _kill_after(process, 3.0)
    judged = Judgment.objects.filter(project=project).count()
    assert 0 < judged < 5000
    # Every counter agrees with the rows: nothing half-written.
    items = Item.objects.filter(project=project).annotate(
        judgments_n=Count("judgments", distinct=True),
        live=Count("assignments", filter=Q(assignments__state=Assignment.State.ACTIVE), distinct=True),
    )
    for item in items:
        assert item.votes == item.judgments_n, item
        assert item.filled == item.judgments_n + item.live, item
        assert item.is_complete == (item.votes >= item.target), item
    assert not Assignment.objects.filter(project=project, state=Assignment.State.SUBMITTED, judgment__isnull=True)
    assert Assignment.objects.filter(project=project, state=Assignment.State.ACTIVE).count() <= 1
