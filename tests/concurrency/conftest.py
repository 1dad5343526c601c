import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def _needs_postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency tests need PostgreSQL (set DATABASE_URL); CI runs them there")
