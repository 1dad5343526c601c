import datetime

import pytest

from labeling.models import Judgment
from labeling.services.tokens import token_create


@pytest.fixture
def api(client):
    """A client that speaks JSON with a bearer token."""

    class Api:
        def __init__(self, user):
            self.token = token_create(username=user.username)[1]

        def post(self, path, data=None):
            return client.post(
                path, data or {}, content_type="application/json", headers={"Authorization": f"Bearer {self.token}"}
            )

        def get(self, path):
            return client.get(path, headers={"Authorization": f"Bearer {self.token}"})

    return Api


def test_next_returns_the_documented_shape(api, annotator, project, items):
    response = api(annotator).post(f"/api/projects/{project.slug}/next")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"assignment", "expires_at", "item"}
    datetime.datetime.fromisoformat(body["expires_at"])
    assert body["item"]["id"].startswith("item-")
    assert body["item"]["prompt"][0]["role"] == "user"
    assert len(body["item"]["responses"]) == 2
    assert all(set(response) == {"id", "content"} for response in body["item"]["responses"])


def test_asking_again_returns_the_same_assignment(api, annotator, project, items):
    client = api(annotator)
    first = client.post(f"/api/projects/{project.slug}/next").json()
    assert client.post(f"/api/projects/{project.slug}/next").json()["assignment"] == first["assignment"]


def test_model_names_shown_only_when_the_project_says_so(api, annotator, project, items):
    project.show_model_names = True
    project.save()
    body = api(annotator).post(f"/api/projects/{project.slug}/next").json()
    assert {response["model"] for response in body["item"]["responses"]} == {"model-a", "model-b"}


def test_full_loop_until_204(api, annotator, project, items):
    client = api(annotator)
    judged = 0
    while (response := client.post(f"/api/projects/{project.slug}/next")).status_code == 200:
        body = response.json()
        ids = [entry["id"] for entry in body["item"]["responses"]]
        submit = client.post(
            f"/api/assignments/{body['assignment']}/judgment",
            {"ranking": [[ids[1]], [ids[0]]], "strength": 2, "both_bad": False, "rationale": "", "criteria": {}},
        )
        assert submit.status_code == 201
        judged += 1
    assert response.status_code == 204 and response.content == b""
    assert judged == len(items) == Judgment.objects.filter(annotator=annotator).count()


def test_retry_returns_200_and_the_same_judgment(api, annotator, project, items):
    client = api(annotator)
    body = client.post(f"/api/projects/{project.slug}/next").json()
    ids = [entry["id"] for entry in body["item"]["responses"]]
    payload = {"ranking": [ids]}  # a tie
    first = client.post(f"/api/assignments/{body['assignment']}/judgment", payload)
    second = client.post(f"/api/assignments/{body['assignment']}/judgment", payload)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Judgment.objects.count() == 1


def test_bad_ranking_answers_400_naming_the_problem(api, annotator, project, items):
    client = api(annotator)
    body = client.post(f"/api/projects/{project.slug}/next").json()
    response = client.post(f"/api/assignments/{body['assignment']}/judgment", {"ranking": [["12345678"]]})
    assert response.status_code == 400
    assert "does not belong" in response.json()["detail"]
    assert not Judgment.objects.exists()


def test_malformed_body_answers_422(api, annotator, project, items):
    client = api(annotator)
    body = client.post(f"/api/projects/{project.slug}/next").json()
    response = client.post(f"/api/assignments/{body['assignment']}/judgment", {"ranking": "A"})
    assert response.status_code == 422
    assert not Judgment.objects.exists()


def test_skip(api, annotator, project, items):
    client = api(annotator)
    body = client.post(f"/api/projects/{project.slug}/next").json()
    response = client.post(f"/api/assignments/{body['assignment']}/skip", {"reason": "unreadable"})
    assert response.status_code == 200
    assert response.json()["state"] == "skipped"
    assert client.post(f"/api/projects/{project.slug}/next").json()["item"]["id"] != body["item"]["id"]


def test_stats_document_has_the_stable_keys(api, annotator, project, items):
    client = api(annotator)
    body = client.post(f"/api/projects/{project.slug}/next").json()
    ids = [entry["id"] for entry in body["item"]["responses"]]
    client.post(f"/api/assignments/{body['assignment']}/judgment", {"ranking": [[ids[0]], [ids[1]]]})
    stats = client.get(f"/api/projects/{project.slug}/stats").json()
    assert {"items", "items_complete", "judgments", "agreement", "annotators", "leaderboard"} <= set(stats)
    assert stats["items"] == 5 and stats["judgments"] == 1
    assert set(stats["agreement"]) >= {"krippendorff_alpha", "pairwise", "with_reference"}
    (row,) = stats["annotators"]
    assert row["username"] == "anna" and row["judgments"] == 1
    assert {"model", "score", "ci_low", "ci_high", "wins", "losses", "ties"} <= set(stats["leaderboard"][0])


def test_missing_or_wrong_token_answers_401(client, project):
    assert client.post(f"/api/projects/{project.slug}/next").status_code == 401
    response = client.post(f"/api/projects/{project.slug}/next", headers={"Authorization": "Bearer hf_lbl_nope"})
    assert response.status_code == 401


def test_outsider_gets_404_for_project_and_assignment(api, annotator, outsider, project, items):
    body = api(annotator).post(f"/api/projects/{project.slug}/next").json()
    intruder = api(outsider)
    assert intruder.post(f"/api/projects/{project.slug}/next").status_code == 404
    assert intruder.get(f"/api/projects/{project.slug}/stats").status_code == 404
    response = intruder.post(f"/api/assignments/{body['assignment']}/judgment", {"ranking": [["1"], ["2"]]})
    assert response.status_code == 404
    assert intruder.post(f"/api/assignments/{body['assignment']}/skip").status_code == 404
    assert not Judgment.objects.exists()


def test_openapi_schema_is_served(client):
    schema = client.get("/api/openapi.json").json()
    assert "/api/projects/{slug}/next" in schema["paths"]
    assert "/api/assignments/{assignment_id}/judgment" in schema["paths"]


def test_nul_bytes_are_refused_not_stored(api, annotator, project, items):
    """PostgreSQL cannot store NUL; found by fuzzing: a clear 4xx, and nothing changes."""
    client = api(annotator)
    assert client.post(f"/api/projects/{project.slug}%00x/next").status_code == 404
    body = client.post(f"/api/projects/{project.slug}/next").json()
    ids = [entry["id"] for entry in body["item"]["responses"]]
    response = client.post(
        f"/api/assignments/{body['assignment']}/judgment", {"ranking": [[ids[0]], [ids[1]]], "rationale": "a\x00b"}
    )
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
    assert not Judgment.objects.exists()
    assert client.post(f"/api/assignments/{body['assignment']}/skip", {"reason": "x\x00"}).status_code == 400
