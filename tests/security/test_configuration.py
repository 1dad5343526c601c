"""Settings fail loudly; the documented production settings pass `check --deploy`; logins are guarded."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "label.example.org",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
}


def _manage(*args, **environment):
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_COOKIES"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_documented_production_settings_pass_check_deploy():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_without_debug_the_app_refuses_to_start_without(missing):
    environment = {key: value for key, value in PRODUCTION.items() if key != missing}
    result = _manage("check", **environment)
    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr


def test_a_malformed_boolean_is_an_error():
    result = _manage("check", **{**PRODUCTION, "DEBUG": "maybe"})
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


def test_secrets_may_come_from_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-" + "x" * 60)
    environment = {key: value for key, value in PRODUCTION.items() if key != "SECRET_KEY"}
    result = _manage("check", **environment, SECRET_KEY_FILE=str(secret))
    assert result.returncode == 0, result.stderr


def test_session_key_rotates_at_login(client, annotator):
    client.get(reverse("login"))
    client.session.save()
    before = client.session.session_key
    response = client.post(reverse("login"), {"username": "anna", "password": PASSWORD})
    assert response.status_code == 302
    assert client.session.session_key != before


def test_repeated_failed_logins_lock_the_account_out(client, annotator, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "anna", "password": "wrong"})
    locked = client.post(reverse("login"), {"username": "anna", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    page = locked.content.decode()  # the app's own page, saying for how long
    assert 'data-testid="error-page"' in page and "Too many failed log-ins" in page
    assert f"for {settings.AXES_COOLOFF_TIME * 60:.0f} minutes: try again after" in page


@pytest.mark.parametrize("path", ["/signup/", "/accounts/signup/", "/register/", "/accounts/register/"])
def test_there_is_no_signup(client, db, path):
    assert client.get(path).status_code == 404


def test_responses_carry_hardening_headers(client, db):
    response = client.get(reverse("login"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
