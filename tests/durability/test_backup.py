"""Backup and restore drills (README "Backup and restore"): a project restored from a
backup exports byte for byte what it exported before."""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
JUDGE = """
import django
django.setup()
from django.contrib.auth import get_user_model
from labeling.models import Project
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
project = Project.objects.get(slug="demo")
for name, choice in (("alice", "A"), ("bob", "B")):
    user = get_user_model().objects.get(username=name)
    for _ in range(12):
        assignment = assignment_next(project=project, annotator=user)
        ranking = ranking_from_choice(assignment=assignment, choice=choice)
        judgment_submit(assignment=assignment, annotator=user, ranking=ranking, strength=2)
"""


def _run(environment: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _exports(environment: dict, folder: Path) -> dict[str, bytes]:
    """Every file of a default and a raw export, in the Hub layout."""
    files = {}
    for config in ("default", "raw"):
        out = folder / config
        _run(environment, "manage.py", "export_preferences", "demo", "--out", str(out), "--config", config,
             "--format", "parquet", "--test-size", "0.25", "--seed", "3")  # fmt: skip
        files.update(
            {f"{config}/{path.relative_to(out)}": path.read_bytes() for path in out.rglob("*") if path.is_file()}
        )
    return files


def _seed(environment: dict) -> None:
    _run(environment, "manage.py", "migrate", "--noinput")
    _run(environment, "manage.py", "demo")
    _run(environment, "-c", JUDGE)


def test_sqlite_backup_restores_a_byte_identical_export(tmp_path):
    base = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    original = {**base, "SQLITE_PATH": str(tmp_path / "live.sqlite3")}
    _seed(original)
    before = _exports(original, tmp_path / "before")
    # The documented backup: SQLite's online backup API (what `sqlite3 db ".backup file"` does).
    _run(original, "-c", f"import sqlite3; sqlite3.connect({str(tmp_path / 'live.sqlite3')!r}).backup("
         f"sqlite3.connect({str(tmp_path / 'backup.sqlite3')!r}))")  # fmt: skip
    restored = {**base, "SQLITE_PATH": str(tmp_path / "restored.sqlite3")}
    shutil.copy(tmp_path / "backup.sqlite3", tmp_path / "restored.sqlite3")
    after = _exports(restored, tmp_path / "after")
    assert sorted(before) == sorted(after)
    assert any(name.endswith(".parquet") for name in before)
    assert before == after


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres") or not shutil.which("pg_dump"),
    reason="the PostgreSQL drill needs DATABASE_URL on PostgreSQL and pg_dump; CI runs it",
)
def test_postgres_dump_and_restore_gives_a_byte_identical_export(tmp_path):
    import psycopg

    server = urlparse(os.environ["DATABASE_URL"])
    admin = server._replace(path="/postgres").geturl()
    names = ("feedback_drill_live", "feedback_drill_restored")
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in names:
            connection.execute(f"DROP DATABASE IF EXISTS {name}")
            connection.execute(f"CREATE DATABASE {name}")
    try:
        live = {**os.environ, "DATABASE_URL": server._replace(path=f"/{names[0]}").geturl()}
        restored = {**os.environ, "DATABASE_URL": server._replace(path=f"/{names[1]}").geturl()}
        _seed(live)
        before = _exports(live, tmp_path / "before")
        dump = tmp_path / "feedback.dump"
        subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", live["DATABASE_URL"]], check=True, timeout=300)
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={restored['DATABASE_URL']}", str(dump)], check=True, timeout=300
        )
        after = _exports(restored, tmp_path / "after")
        assert before == after
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            for name in names:
                connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
