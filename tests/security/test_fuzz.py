"""Fuzzing, bounded so CI stays quick: the API answers no request with a 500, and the
import parsers raise nothing but the project's own validation errors."""

import contextlib
import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.models import Item
from labeling.services.errors import DomainError
from labeling.services.importing import items_import
from labeling.services.parsing.shapes import RowInvalid, detect_shape, normalize
from labeling.services.tokens import token_create
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@pytest.fixture
def keep_test_connection():
    """The WSGI app is called directly, so Django would close the test's database
    connection after each request (it sits in the test's transaction); the test client
    avoids that the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_token(db, settings, tmp_path, keep_test_connection):
    settings.LABELING_JOBS_DIR = tmp_path
    project = ProjectFactory(slug="fuzz", overlap=2)
    member = MembershipFactory(project=project, role="manager", user__username="fuzzer").user
    ItemFactory.create_batch(3, project=project)
    return token_create(username=member.username)[1]


@schema.parametrize()
@FUZZ
def test_the_api_never_answers_500(case, fuzz_token):
    response = case.call(headers={"Authorization": f"Bearer {fuzz_token}"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
COLUMNS = [
    "id", "prompt", "responses", "response_a", "response_b", "model_a", "model_b", "chosen", "rejected",
    "metadata", "gold", "gold_answer", "conversation_a", "conversation_b", "winner", "instruction",
    "completions", "message_tree_id",
]  # fmt: skip
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "x"]), "content": JSON})


@given(row=st.dictionaries(st.sampled_from(COLUMNS), JSON | st.lists(MESSAGE, max_size=4), min_size=1, max_size=6))
@FUZZ
def test_row_parsing_raises_only_row_invalid(row):
    with contextlib.suppress(RowInvalid):
        normalize(row, detect_shape(set(row)))


@given(payload=st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
@FUZZ
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_files_raise_only_validation_errors_and_write_nothing(db, tmp_path, suffix, payload):
    project = ProjectFactory(slug="fuzz-files")
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(payload)
    before = Item.objects.filter(project=project).count()  # examples share the test's database
    try:
        items_import(project=project, path=path)
    except DomainError:
        assert Item.objects.filter(project=project).count() == before


@given(rows=st.lists(st.dictionaries(st.sampled_from(COLUMNS), JSON, max_size=5), max_size=5))
@FUZZ
def test_jsonl_rows_raise_only_validation_errors(db, tmp_path, rows):
    project = ProjectFactory(slug="fuzz-rows")
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows))
    before = Item.objects.filter(project=project).count()  # examples share the test's database
    try:
        items_import(project=project, path=path)
    except DomainError:
        assert Item.objects.filter(project=project).count() == before
