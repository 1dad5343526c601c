"""Projects: their settings are checked alike when made and when changed."""

import pytest

from labeling.models import Project
from labeling.services.errors import InvalidInput
from labeling.services.projects import project_create, project_update


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


def test_a_project_made_without_a_license_has_none_and_may_get_one_later(db):
    project = project_create(slug="unlicensed", title="Unlicensed")
    assert project.license == ""  # the dataset card says "not set"
    project = project_update(project=project, license="cc-by-sa-4.0")
    assert project.license == "cc-by-sa-4.0"
    assert project_update(project=project, license="").license == ""
