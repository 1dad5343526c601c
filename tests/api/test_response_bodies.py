"""The hot endpoints write their JSON by hand: it must be exactly what the declared schemas produce."""

import pytest

from labeling.api import AssignmentOut, JudgmentOut
from labeling.services.tokens import token_create
from tests.factories import ItemFactory


@pytest.fixture
def headers(annotator):
    return {"Authorization": f"Bearer {token_create(username=annotator.username)[1]}"}


def _schema_dump(schema, body):
    return schema.model_validate(body).model_dump(exclude_none=True)


@pytest.mark.parametrize("show_models", [False, True])
def test_next_and_submit_bodies_match_their_schemas(client, headers, project, items, show_models):
    project.show_model_names = show_models
    project.save()
    response = client.post(f"/api/projects/{project.slug}/next", headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body == _schema_dump(AssignmentOut, body)
    assert all(("model" in entry) == show_models for entry in body["item"]["responses"])
    ranking = [[entry["id"]] for entry in body["item"]["responses"]]
    path = f"/api/assignments/{body['assignment']}/judgment"
    first = client.post(path, {"ranking": ranking}, content_type="application/json", headers=headers)
    again = client.post(path, {"ranking": ranking}, content_type="application/json", headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first["Content-Type"] == again["Content-Type"] == "application/json; charset=utf-8"
    assert first.json() == again.json() == _schema_dump(JudgmentOut, first.json())


def test_a_prompt_with_extra_keys_is_cut_to_the_schema(client, headers, project):
    ItemFactory(project=project, prompt=[{"role": "user", "content": "hi", "name": "x"}])
    body = client.post(f"/api/projects/{project.slug}/next", headers=headers).json()
    assert body["item"]["prompt"] == [{"role": "user", "content": "hi"}]


def test_nothing_left_is_204_without_a_body(client, headers, project):
    response = client.post(f"/api/projects/{project.slug}/next", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
