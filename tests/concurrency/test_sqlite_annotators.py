"""Eight annotators at once on SQLite named by a `sqlite:///` DATABASE_URL, each in a
process of its own (as gunicorn's workers are): no request fails, every invariant holds.

A `sqlite:///` URL used to lose the options the default SQLite path sets (IMMEDIATE
transactions, the lock timeout): four annotators at once saw "database is locked" on
half their requests.
"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANNOTATORS = 8
ITEMS = 150
OVERLAP = 3
SETUP = f"""
import json, sys, django
django.setup()
from django.core.management import call_command
from labeling.services.importing import items_import
from labeling.services.members import membership_add
from labeling.services.projects import project_create
from labeling.services.tokens import token_create
call_command("migrate", verbosity=0)
project = project_create(slug="race", title="Race", overlap={OVERLAP})
items_import(project=project, path=sys.argv[1])
tokens = []
for n in range({ANNOTATORS}):
    membership_add(project=project, username=f"annotator-{{n}}", role="annotator", create=True)
    tokens.append(token_create(username=f"annotator-{{n}}")[1])
print(json.dumps(tokens))
"""
# One annotator: next and submit over the API (the whole middleware stack, in this
# process) until nothing is left; a 500 is counted, not raised.
ANNOTATE = """
import json, sys, django
django.setup()
from django.test import Client
client, auth = Client(raise_request_exception=False), {"Authorization": f"Bearer {sys.argv[1]}"}
done, failures = 0, []
while len(failures) < 20:
    reply = client.post("/api/projects/race/next", headers=auth)
    if reply.status_code == 204:
        break
    if reply.status_code != 200:
        failures.append([reply.status_code, reply.content.decode()[:200]])
        continue
    lease = reply.json()
    ids = [response["id"] for response in lease["item"]["responses"]]
    reply = client.post(f"/api/assignments/{lease['assignment']}/judgment", {"ranking": [[ids[0]], [ids[1]]]},
                        content_type="application/json", headers=auth)
    if reply.status_code == 201:
        done += 1
    else:
        failures.append([reply.status_code, reply.content.decode()[:200]])
print(json.dumps({"done": done, "failures": failures}))
"""


@pytest.fixture
def _needs_postgres():
    """Overrides the package's: this test brings its own SQLite database, on either run."""


def _environment(database: Path) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "SQLITE_PATH"}
    return {**environment, "DATABASE_URL": f"sqlite:///{database}", "DJANGO_SETTINGS_MODULE": "feedback.settings"}


def test_eight_annotators_at_once_on_a_sqlite_url_never_fail(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": f"q{n}", "prompt": f"Question {n}?", "response_a": "Yes.", "response_b": "No."}) + "\n"
            for n in range(ITEMS)
        )
    )
    database = tmp_path / "race.sqlite3"
    environment = _environment(database)
    setup = subprocess.run(
        [sys.executable, "-c", SETUP, str(items)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stderr[-3000:]
    tokens = json.loads(setup.stdout.splitlines()[-1])

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", ANNOTATE, token], cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True
        )
        for token in tokens
    ]
    results = [json.loads(worker.communicate(timeout=600)[0].splitlines()[-1]) for worker in workers]

    assert [result["failures"] for result in results] == [[]] * ANNOTATORS
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        judgments = db.execute("SELECT count(*) FROM labeling_judgment").fetchone()[0]
        assert judgments == ITEMS * OVERLAP == sum(result["done"] for result in results)
        assert db.execute(
            "SELECT count(*) FROM labeling_item WHERE NOT is_complete OR votes != ? OR filled != ?", [OVERLAP, OVERLAP]
        ).fetchone() == (0,)
        assert db.execute(
            "SELECT count(*) FROM (SELECT 1 FROM labeling_judgment GROUP BY item_id, annotator_id HAVING count(*) > 1)"
        ).fetchone() == (0,), "an annotator judged an item twice"
        assert db.execute("SELECT count(*) FROM labeling_assignment WHERE state = 'active'").fetchone() == (0,)


TURNS = """
import json, threading, time, django
django.setup()
from labeling.db import sql
order, holding = [], threading.Event()
def first():
    with sql.writers_in_turn():
        holding.set()
        order.append("first in")
        time.sleep(0.3)
        order.append("first out")
def second():
    holding.wait()
    with sql.writers_in_turn():
        order.append("second in")
threads = [threading.Thread(target=first), threading.Thread(target=second)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(order))
"""


def test_writers_take_turns_across_threads_of_one_process(tmp_path):
    """The kernel lock that queues the annotation loop's writers holds between threads too
    (each has its own lock file descriptor), so a waiting writer wakes when the first is done."""
    done = subprocess.run(
        [sys.executable, "-c", TURNS],
        cwd=ROOT,
        env=_environment(tmp_path / "turns.sqlite3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == ["first in", "first out", "second in"]
