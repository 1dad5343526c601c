import io
import json
import zipfile

import pytest

from labeling.models import Item
from labeling.services.tokens import token_create


@pytest.fixture
def as_user(client, settings, tmp_path):
    settings.LABELING_JOBS_DIR = tmp_path

    def make(user):
        headers = {"Authorization": f"Bearer {token_create(username=user.username)[1]}"}
        return client, headers

    return make


@pytest.mark.parametrize("process_min_bytes", [-1, 0], ids=["parsed-in-thread", "parsed-in-process"])
def test_manager_imports_a_file_and_polls_the_job(
    as_user, manager, project, django_capture_on_commit_callbacks, settings, process_min_bytes
):
    settings.LABELING_IMPORT_PROCESS_MIN_BYTES = process_min_bytes  # 0: the file is read in a parsing process
    client, headers = as_user(manager)
    content = "".join(
        json.dumps({"prompt": f"Q{n}", "response_a": f"a{n}", "response_b": f"b{n}"}) + "\n" for n in range(3)
    )
    upload = io.BytesIO(content.encode())
    upload.name = "pairs.jsonl"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/projects/{project.slug}/imports", {"file": upload}, headers=headers)
    assert response.status_code == 202, response.content
    job = client.get(f"/api/jobs/{response.json()['job']}", headers=headers).json()
    assert job["state"] == "succeeded" and job["result"]["imported"] == 3
    assert Item.objects.filter(project=project).count() == 3


def test_annotator_cannot_start_jobs(as_user, annotator, project):
    client, headers = as_user(annotator)
    upload = io.BytesIO(b"{}")
    upload.name = "x.jsonl"
    assert client.post(f"/api/projects/{project.slug}/imports", {"file": upload}, headers=headers).status_code == 404
    response = client.post(
        f"/api/projects/{project.slug}/exports", {}, content_type="application/json", headers=headers
    )
    assert response.status_code == 404


def test_export_job_downloads_a_zip(as_user, manager, project, items, django_capture_on_commit_callbacks):
    client, headers = as_user(manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/projects/{project.slug}/exports", {"test_size": 0}, content_type="application/json", headers=headers
        )
    assert response.status_code == 202
    job_id = response.json()["job"]
    assert client.get(f"/api/jobs/{job_id}", headers=headers).json()["state"] == "succeeded"
    download = client.get(f"/api/jobs/{job_id}/download", headers=headers)
    assert download.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert "README.md" in archive.namelist() and "data/train-00000-of-00001.parquet" in archive.namelist()


def test_bad_export_options_answer_400(as_user, manager, project):
    client, headers = as_user(manager)
    response = client.post(
        f"/api/projects/{project.slug}/exports", {"config": "nope"}, content_type="application/json", headers=headers
    )
    assert response.status_code == 400 and "--config" in response.json()["detail"]


def test_jobs_of_other_projects_answer_404(
    as_user, manager, outsider, project, items, django_capture_on_commit_callbacks
):
    client, headers = as_user(manager)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = client.post(
            f"/api/projects/{project.slug}/exports", {}, content_type="application/json", headers=headers
        ).json()["job"]
    client, headers = as_user(outsider)
    assert client.get(f"/api/jobs/{job_id}", headers=headers).status_code == 404
    assert client.get(f"/api/jobs/{job_id}/download", headers=headers).status_code == 404


def test_projects_and_members_over_the_api(as_user, manager, project, user_factory):
    client, headers = as_user(manager)
    mine = client.get("/api/projects", headers=headers).json()
    assert [(row["slug"], row["role"]) for row in mine] == [("alpha", "manager")]
    response = client.post(
        f"/api/projects/{project.slug}/members",
        {"username": "newbie", "role": "annotator", "create": True},
        content_type="application/json",
        headers=headers,
    )
    assert response.json() == {"username": "newbie", "role": "annotator"}
    refused = client.post("/api/projects", {"slug": "mine"}, content_type="application/json", headers=headers)
    assert refused.status_code == 404  # managing a project is not the right to create projects
    boss = user_factory(username="boss")
    boss.is_superuser = True
    boss.save()
    client, headers = as_user(boss)
    created = client.post(
        "/api/projects", {"slug": "fresh", "overlap": 3}, content_type="application/json", headers=headers
    )
    assert created.status_code == 201 and created.json()["role"] == "manager"
