import hashlib
import json
import zipfile

import datasets
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import Item, Job
from labeling.services.assignment import assignment_next
from labeling.services.errors import InvalidInput
from labeling.services.exporting import ExportOptions
from labeling.services.jobs import job_download_path, job_export_start, job_import_start, job_status
from labeling.services.judgments import judgment_submit, ranking_from_choice

ROWS = [{"id": f"q{n}", "prompt": f"Question {n}?", "responses": [f"Yes {n}", f"No {n}"]} for n in range(5)]


def _upload(rows, name="items.jsonl", text=None):
    content = text if text is not None else "".join(json.dumps(row) + "\n" for row in rows)
    return SimpleUploadedFile(name, content.encode())


def test_import_job_runs_and_reports(project, manager, django_capture_on_commit_callbacks, settings, tmp_path):
    settings.LABELING_JOBS_DIR = tmp_path
    with django_capture_on_commit_callbacks(execute=True):
        job = job_import_start(project=project, user=manager, upload=_upload(ROWS))
    job.refresh_from_db()
    status = job_status(job=job)
    assert status["state"] == "succeeded", status
    assert status["rows_total"] == 5 and status["rows_done"] == 5
    assert status["result"]["imported"] == 5
    assert Item.objects.filter(project=project).count() == 5


def test_failed_import_job_records_why_and_imports_nothing(
    project, manager, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.LABELING_JOBS_DIR = tmp_path
    bad = "".join(json.dumps(row) + "\n" for row in ROWS) + "{not json\n"
    with django_capture_on_commit_callbacks(execute=True):
        job = job_import_start(project=project, user=manager, upload=_upload([], text=bad))
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "nothing was imported" in job.error
    assert job.result["rejected"][0]["row"] == 6
    assert not Item.objects.filter(project=project).exists()


def test_upload_with_an_unknown_extension_is_refused(project, manager, settings, tmp_path):
    settings.LABELING_JOBS_DIR = tmp_path
    with pytest.raises(InvalidInput, match="Cannot tell the format"):
        job_import_start(project=project, user=manager, upload=_upload(ROWS, name="items.exe"))
    assert not Job.objects.exists()


def test_export_job_writes_a_zip_that_datasets_loads(
    project, manager, annotator, items, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
        judgment_submit(
            assignment_id=assignment.pk,
            annotator=annotator,
            ranking=ranking_from_choice(assignment=assignment, choice="A"),
        )
    with django_capture_on_commit_callbacks(execute=True):
        job = job_export_start(project=project, user=manager, options=ExportOptions())
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["rows"] == {"train": 5}
    assert job.checksum == hashlib.sha256(job_download_path(job=job).read_bytes()).hexdigest()
    with zipfile.ZipFile(job_download_path(job=job)) as archive:
        assert "README.md" in archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    loaded = datasets.load_dataset("parquet", data_dir=str(tmp_path / "unzipped" / "data"))
    assert loaded["train"].num_rows == 5


def test_an_upload_that_cannot_be_stored_leaves_no_job(project, manager, settings, tmp_path):
    blocker = tmp_path / "jobs"
    blocker.write_text("a file where the jobs folder should be")
    settings.LABELING_JOBS_DIR = blocker
    with pytest.raises(OSError):
        job_import_start(project=project, user=manager, upload=_upload(ROWS))
    assert not Job.objects.exists()


def test_starting_an_export_leaves_the_callers_options_alone(
    project, manager, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.LABELING_JOBS_DIR = tmp_path
    options = ExportOptions(fmt="jsonl")
    with django_capture_on_commit_callbacks(execute=False):
        job = job_export_start(project=project, user=manager, options=options)
    assert options.fmt == "jsonl"
    assert job.params["fmt"] == "parquet"  # an export job always writes the Hub layout's Parquet files


def test_an_upload_over_the_limit_is_refused_before_anything_is_kept(project, manager, settings, tmp_path):
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    settings.LABELING_MAX_UPLOAD_BYTES = 3
    with pytest.raises(InvalidInput, match="over the limit of 3"):
        job_import_start(project=project, user=manager, upload=_upload(ROWS))
    assert not Job.objects.exists()
    assert not (tmp_path / "jobs").exists()


def test_an_upload_that_breaks_midway_leaves_no_job_and_no_file(project, manager, settings, tmp_path):
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    upload = _upload(ROWS)

    def chunks():
        yield b'{"id": "q1"'
        raise OSError("connection reset")

    upload.chunks = chunks
    with pytest.raises(OSError, match="connection reset"):
        job_import_start(project=project, user=manager, upload=upload)
    assert not Job.objects.exists()
    assert list((tmp_path / "jobs").iterdir()) == []  # the partial file and its folder are gone
