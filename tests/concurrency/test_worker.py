"""A queued import run by a real `manage.py db_worker` process, on PostgreSQL."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import Item, Job
from labeling.services.jobs import job_import_start
from tests.factories import MembershipFactory, ProjectFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_a_db_worker_process_runs_a_queued_import(settings, tmp_path):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path / "c")}
    }
    project = ProjectFactory(slug="queued")
    manager = MembershipFactory(project=project, role="manager").user
    rows = "".join(json.dumps({"prompt": f"Q{n}", "responses": [f"a{n}", f"b{n}"]}) + "\n" for n in range(50))
    job = job_import_start(project=project, user=manager, upload=SimpleUploadedFile("rows.jsonl", rows.encode()))
    assert Job.objects.get(pk=job.pk).state == Job.State.QUEUED  # nothing runs it in this process

    database = django_settings.DATABASES["default"]
    environment = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "TASKS_BACKEND": "database",
        "LABELING_JOBS_DIR": str(tmp_path / "jobs"),
        "CACHE_DIR": str(tmp_path / "c"),
    }
    worker = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.rows_total == 50 and job.rows_done == 50
    assert Item.objects.filter(project=project).count() == 50
