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
        judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=ranking, strength=2)
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


# Judges the demo's remaining items and dies without closing its connection, as a killed
# worker would: its commits stay in the -wal file, not yet copied into the database file.
JUDGE_AND_DIE = JUDGE.replace("range(12)", "range(4)") + "import os\nos._exit(0)\n"


def _online_backup(environment: dict, source: Path, target: Path) -> None:
    """The documented backup: SQLite's online backup API (what `sqlite3 db ".backup file"` does)."""
    script = f"import sqlite3; sqlite3.connect({str(source)!r}).backup(sqlite3.connect({str(target)!r}))"
    _run(environment, "-c", script)


def test_sqlite_backup_restores_a_byte_identical_export(tmp_path):
    base = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    live = tmp_path / "live.sqlite3"
    original = {**base, "SQLITE_PATH": str(live)}
    _seed(original)
    _run(original, "-c", JUDGE_AND_DIE)
    wal = Path(f"{live}-wal")
    assert wal.exists() and wal.stat().st_size > 0, "the last judgments should still be in the -wal file"
    _online_backup(original, live, tmp_path / "backup.sqlite3")
    before = _exports(original, tmp_path / "before")

    # The restore target had a database of its own, whose process died leaving its -wal and -shm.
    restored_path = tmp_path / "restored.sqlite3"
    restored = {**base, "SQLITE_PATH": str(restored_path)}
    _run(restored, "manage.py", "migrate", "--noinput")
    _run(restored, "manage.py", "demo")
    _run(restored, "-c", JUDGE_AND_DIE)
    assert Path(f"{restored_path}-wal").exists()
    # The documented restore, with the app stopped: the old -wal and -shm go first.
    for stale in (Path(f"{restored_path}-wal"), Path(f"{restored_path}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copy(tmp_path / "backup.sqlite3", restored_path)
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
