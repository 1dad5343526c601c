"""Personas and data builders shared by every test level."""

import json
from pathlib import Path

import pytest

from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

PASSWORD = "correct horse battery staple"


@pytest.fixture
def project(db):
    return ProjectFactory(slug="alpha", overlap=2)


@pytest.fixture
def other_project(db):
    return ProjectFactory(slug="beta", overlap=1)


@pytest.fixture
def manager(project):
    return MembershipFactory(project=project, role="manager", user__username="manny").user


@pytest.fixture
def annotator(project):
    return MembershipFactory(project=project, role="annotator", user__username="anna").user


@pytest.fixture
def second_annotator(project):
    return MembershipFactory(project=project, role="annotator", user__username="bert").user


@pytest.fixture
def outsider(other_project):
    """A member of another project only."""
    return MembershipFactory(project=other_project, role="manager", user__username="otto").user


@pytest.fixture
def items(project):
    return ItemFactory.create_batch(5, project=project)


@pytest.fixture
def write_jsonl(tmp_path):
    def write(rows, name="items.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    return write


@pytest.fixture
def user_factory(db):
    return UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Real hashing costs ~0.3 s a user; the tests are not about its strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_cache(settings, request):
    """Each test gets an empty in-memory cache (stats and job progress live there)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": request.node.nodeid}
    }


@pytest.fixture(autouse=True)
def _expire_on_every_claim(settings):
    """Tests move lease clocks by hand and expect the very next claim to notice."""
    settings.LABELING_EXPIRY_CHECK_SECONDS = 0
