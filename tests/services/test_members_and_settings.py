"""Rules on members, settings and tokens hold on every path: the API, the commands and the console."""

import pytest

from labeling.models import Membership, Project
from labeling.services.errors import InvalidInput
from labeling.services.projects import membership_add, project_create, project_update, token_create
from labeling.services.projects import token_create as make_token


def test_adding_the_last_manager_again_as_annotator_is_refused(project, manager):
    with pytest.raises(InvalidInput, match="only manager"):
        membership_add(project=project, username=manager.username, role="annotator")
    assert Membership.objects.get(project=project, user=manager).role == "manager"


def test_the_api_cannot_leave_a_project_without_a_manager(client, project, manager):
    headers = {"Authorization": f"Bearer {make_token(username=manager.username)[1]}"}
    response = client.post(
        f"/api/projects/{project.slug}/members",
        {"username": manager.username, "role": "annotator"},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 400 and "only manager" in response.json()["detail"]
    assert Membership.objects.filter(project=project, role="manager").count() == 1


def test_a_created_account_needs_a_valid_username(project):
    with pytest.raises(InvalidInput, match="Username"):
        membership_add(project=project, username="  has space!* ", create=True)
    assert not Membership.objects.filter(project=project).exists()


def test_project_create_checks_its_texts_as_project_update_does(db):
    with pytest.raises(InvalidInput, match="1 to 200 characters"):
        project_create(slug="long-title", title="x" * 300)
    with pytest.raises(InvalidInput, match="NUL"):
        project_create(slug="nul", guidelines="a\x00b")
    assert not Project.objects.exists()


def test_project_update_refuses_nul_bytes(project):
    with pytest.raises(InvalidInput, match="NUL"):
        project_update(project=project, guidelines="a\x00b")
    project.refresh_from_db()
    assert "\x00" not in project.guidelines


def test_token_names_refuse_nul_bytes(manager):
    with pytest.raises(InvalidInput, match="NUL"):
        token_create(username=manager.username, name="a\x00b")


def test_a_project_made_without_a_license_has_none_and_may_get_one_later(db):
    project = project_create(slug="unlicensed", title="Unlicensed")
    assert project.license == ""  # the dataset card says "not set"
    project = project_update(project=project, license="cc-by-sa-4.0")
    assert project.license == "cc-by-sa-4.0"
    assert project_update(project=project, license="").license == ""
