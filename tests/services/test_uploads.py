"""Uploads checked before they import: staged per project and uploader, dry-run, imported as a job."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeling.models import Item, Job
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.uploads import import_preview, staged_discard, staged_import_start


def _upload(rows, name="items.jsonl"):
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode())


GOOD = [{"id": f"q{n}", "prompt": f"Question {n}?", "response_a": f"a{n}", "response_b": f"b{n}"} for n in range(3)]


@pytest.fixture
def jobs_dir(settings, tmp_path):
    settings.LABELING_JOBS_DIR = tmp_path
    return tmp_path


def test_a_preview_names_bad_rows_and_writes_nothing(project, manager, jobs_dir):
    preview = import_preview(project=project, user=manager, upload=_upload([*GOOD, {"prompt": "only a prompt"}]))
    assert preview.shape == "flat_pair"
    assert preview.rows == 4 and preview.rejected_count == 1 and preview.rejected[0][0] == 4
    assert not preview.importable
    assert [sample.external_id for sample in preview.samples] == ["q0", "q1", "q2"]
    assert Item.objects.filter(project=project).count() == 0


def test_a_checked_file_imports_as_a_job(project, manager, jobs_dir, django_capture_on_commit_callbacks):
    preview = import_preview(project=project, user=manager, upload=_upload(GOOD))
    assert preview.importable and preview.new_items == 3
    with django_capture_on_commit_callbacks(execute=True):
        job = staged_import_start(project=project, user=manager, upload_id=preview.upload)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.result["imported"] == 3
    assert Item.objects.filter(project=project).count() == 3
    with pytest.raises(NotFound, match="upload the file again"):  # the staged copy is gone
        staged_import_start(project=project, user=manager, upload_id=preview.upload)


def test_a_staged_file_belongs_to_its_uploader_and_project(project, other_project, manager, outsider, jobs_dir):
    preview = import_preview(project=project, user=manager, upload=_upload(GOOD))
    for user, target in ((outsider, project), (manager, other_project)):
        with pytest.raises(NotFound):
            staged_import_start(project=target, user=user, upload_id=preview.upload)
    for forged in ("../../etc", "", "not-a-uuid"):
        with pytest.raises(NotFound):
            staged_import_start(project=project, user=manager, upload_id=forged)
    staged_discard(project=project, user=manager, upload_id=preview.upload)
    with pytest.raises(NotFound):
        staged_import_start(project=project, user=manager, upload_id=preview.upload)


def test_an_unreadable_or_unnamed_file_is_explained(project, manager, jobs_dir):
    preview = import_preview(project=project, user=manager, upload=SimpleUploadedFile("x.json", b"{not json"))
    assert preview.error and "not valid JSON" in preview.error and not preview.importable
    with pytest.raises(InvalidInput, match="Cannot tell the format"):
        import_preview(project=project, user=manager, upload=SimpleUploadedFile("x.txt", b"hello"))
    with pytest.raises(InvalidInput, match="Format 'hf' is not accepted"):
        import_preview(project=project, user=manager, upload=io.BytesIO(b""), fmt="hf")
    with pytest.raises(
        InvalidInput, match=r"Format 'xlsx' is not accepted for uploads; use one of auto, jsonl, json, csv, parquet\."
    ):
        import_preview(project=project, user=manager, upload=io.BytesIO(b""), fmt="xlsx")
