"""The API trusts a checked bearer token for API_TOKEN_CACHE_SECONDS at most: revocation takes effect within it."""

import pytest

import labeling.services.tokens as tokens_module
from labeling.services.tokens import token_create, token_revoke, token_user


@pytest.fixture
def clock(monkeypatch):
    """The monotonic clock the token cache reads, moved by hand (that module's only: the global one stays)."""

    class Clock:
        now = 1000.0

    monkeypatch.setattr(tokens_module, "monotonic", lambda: Clock.now)
    return Clock


def _next(client, project, token):
    return client.post(f"/api/projects/{project.slug}/next", headers={"Authorization": f"Bearer {token}"})


def test_a_revoked_token_stops_working_within_the_cache_window(client, settings, clock, annotator, project, items):
    settings.API_TOKEN_CACHE_SECONDS = 5
    row, token = token_create(username=annotator.username)
    assert _next(client, project, token).status_code == 200
    token_revoke(user=annotator, token_id=row.pk)
    clock.now += 4.9
    assert _next(client, project, token).status_code == 200  # this process checked it 4.9 s ago
    clock.now += 0.2
    assert _next(client, project, token).status_code == 401
    clock.now += 60
    assert _next(client, project, token).status_code == 401


def test_with_no_cache_a_revoked_token_stops_at_once(client, settings, clock, annotator, project, items):
    settings.API_TOKEN_CACHE_SECONDS = 0
    row, token = token_create(username=annotator.username)
    assert _next(client, project, token).status_code == 200
    token_revoke(user=annotator, token_id=row.pk)
    assert _next(client, project, token).status_code == 401


def test_a_deactivated_user_is_refused_after_the_window(client, settings, clock, annotator, project, items):
    settings.API_TOKEN_CACHE_SECONDS = 5
    _, token = token_create(username=annotator.username)
    assert _next(client, project, token).status_code == 200
    annotator.is_active = False
    annotator.save()
    clock.now += 5.1
    assert _next(client, project, token).status_code == 401


def test_a_refusal_is_not_cached(client, settings, clock, annotator, project, items, monkeypatch):
    settings.API_TOKEN_CACHE_SECONDS = 5
    _, token = token_create(username=annotator.username)
    real = tokens_module.token_authenticate
    monkeypatch.setattr(tokens_module, "token_authenticate", lambda token: None)  # the database says no, once
    assert _next(client, project, token).status_code == 401
    monkeypatch.setattr(tokens_module, "token_authenticate", real)
    assert _next(client, project, token).status_code == 200  # asked again at once, not answered from a cache


def test_each_request_gets_its_own_user_object(client, settings, clock, annotator, project, items):
    """Per-request state on the user (Django's permission caches) must not leak into the next request."""
    settings.API_TOKEN_CACHE_SECONDS = 5
    _, token = token_create(username=annotator.username)
    first, second, third = (token_user(token=token) for _ in range(3))  # a miss, then two hits
    assert first is not second and second is not third
