"""API tokens: shown once, checked by hash, revoked by their owner only."""

import pytest

from labeling.models import ApiToken
from labeling.services.errors import InvalidInput, NotFound
from labeling.services.tokens import token_authenticate, token_create, token_revoke, tokens_for_user


def test_a_revoked_token_no_longer_authenticates(annotator):
    row, token = token_create(username=annotator.username, name="script")
    assert token_authenticate(token=token) == annotator
    token_revoke(user=annotator, token_id=row.pk)
    assert token_authenticate(token=token) is None
    assert token_revoke(user=annotator, token_id=row.pk).revoked_at is not None  # idempotent
    assert list(tokens_for_user(user=annotator)) == [row]


def test_nobody_revokes_another_users_token(annotator, manager):
    row, _ = token_create(username=annotator.username)
    for token_id in (row.pk, "nope", ""):
        with pytest.raises(NotFound):
            token_revoke(user=manager, token_id=token_id)
    assert ApiToken.objects.get(pk=row.pk).revoked_at is None
    assert list(tokens_for_user(user=manager)) == []


def test_token_names_are_bounded(annotator):
    with pytest.raises(InvalidInput, match="at most 100"):
        token_create(username=annotator.username, name="x" * 101)


def test_token_names_refuse_nul_bytes(manager):
    with pytest.raises(InvalidInput, match="NUL"):
        token_create(username=manager.username, name="a\x00b")
