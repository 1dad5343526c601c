"""Export downloads are named after the project, config, style and date, in the browser and over the API."""

import datetime as dt
import io
import zipfile

import pytest
from django.urls import reverse

from labeling.models import Job
from labeling.services.exporting import ExportOptions
from labeling.services.jobs import job_download_name, job_export_start
from labeling.services.tokens import token_create

FINISHED = dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.UTC)


@pytest.fixture
def export_job(project, manager, items, django_capture_on_commit_callbacks, settings, tmp_path):
    """A finished export of the `alpha` project, standard style, raw config."""
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    with django_capture_on_commit_callbacks(execute=True):
        job = job_export_start(project=project, user=manager, options=ExportOptions(config="raw", style="standard"))
    Job.objects.filter(pk=job.pk).update(finished_at=FINISHED)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


def test_the_name_says_project_config_style_and_date(export_job):
    assert job_download_name(job=export_job) == "alpha-raw-standard-2026-12-07.zip"


def test_the_date_is_the_day_the_export_finished_in_the_sites_time_zone(export_job, settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # 23:30 UTC is the next morning there
    assert job_download_name(job=export_job) == "alpha-raw-standard-2026-12-08.zip"


def test_two_exports_of_one_project_download_under_different_names(project, manager, export_job, settings):
    other = job_export_start(project=project, user=manager, options=ExportOptions())
    Job.objects.filter(pk=other.pk).update(finished_at=FINISHED)
    other.refresh_from_db()
    assert job_download_name(job=other) == "alpha-default-conversational-2026-12-07.zip"
    assert job_download_name(job=other) != job_download_name(job=export_job)


def test_the_browser_download_carries_the_name(client, manager, export_job):
    client.force_login(manager)
    download = client.get(reverse("labeling:manage_job_download", args=[export_job.project.slug, export_job.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="alpha-raw-standard-2026-12-07.zip"'
    assert "README.md" in zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()


def test_the_api_download_carries_the_name(client, manager, export_job):
    headers = {"Authorization": f"Bearer {token_create(username=manager.username)[1]}"}
    download = client.get(f"/api/jobs/{export_job.pk}/download", headers=headers)
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="alpha-raw-standard-2026-12-07.zip"'
