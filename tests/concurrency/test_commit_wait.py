"""A lease commits without waiting for the disk; a judgment always waits for it."""

import pytest
from django.db import connection, transaction

from labeling.models import Judgment
from labeling.services import assignment as assignment_module
from labeling.services.assignment import assignment_next, assignment_prefetch
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.fixture
def seen_in_claims(monkeypatch):
    """synchronous_commit as each new lease is written, inside its transaction."""
    seen = []
    original = assignment_module._lease_new

    def watched(*args, **kwargs):
        seen.append(_setting())
        return original(*args, **kwargs)

    monkeypatch.setattr(assignment_module, "_lease_new", watched)
    return seen


@pytest.fixture
def annotator_and_project():
    project = ProjectFactory(slug="commit-wait", overlap=1)
    ItemFactory.create_batch(3, project=project)
    return MembershipFactory(project=project).user, project


def test_a_lease_of_its_own_commits_without_waiting_and_leaves_the_connection_as_it_was(
    annotator_and_project, seen_in_claims
):
    annotator, project = annotator_and_project
    current = assignment_next(project=project, annotator=annotator)
    queued = assignment_prefetch(project=project, annotator=annotator)
    assert current is not None and queued is not None
    assert seen_in_claims == ["off", "off"]
    assert _setting() == "on"  # the judgment's transaction that follows waits for the disk
    ranking = ranking_from_choice(assignment=current, choice="A")
    judgment_submit(assignment_id=current.pk, annotator=annotator, ranking=ranking)
    assert Judgment.objects.filter(assignment=current).exists()


def test_inside_a_callers_transaction_a_lease_keeps_the_wait_for_what_else_it_writes(
    annotator_and_project, seen_in_claims
):
    annotator, project = annotator_and_project
    first = assignment_next(project=project, annotator=annotator)
    with transaction.atomic():
        judgment_submit(
            assignment_id=first.pk, annotator=annotator, ranking=ranking_from_choice(assignment=first, choice="B")
        )
        following = assignment_next(project=project, annotator=annotator)
        assert _setting() == "on"
    assert following is not None and following.pk != first.pk
    assert seen_in_claims == ["off", "on"]
