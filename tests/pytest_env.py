"""Loaded first (`-p tests.pytest_env` in pyproject.toml): settings the tests need, set
before pytest-django imports the settings module. Settings themselves have no test mode."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_COOKIES", "0")
