"""PostgreSQL prepares the annotation loop's statements on a connection, and they give the same answers."""

import pytest
from django.db import connection

from labeling.access import project_for_user
from labeling.models import Assignment, Judgment
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _judge_through_the_api_path(user, slug: str) -> Judgment:
    project = project_for_user(user, slug)
    current = assignment_next(project=project, annotator=user)
    judgment, created = judgment_submit(
        assignment_id=str(current.pk), annotator=user, ranking=ranking_from_choice(assignment=current, choice="A")
    )
    assert created
    return judgment


def test_the_loop_is_prepared_from_its_second_round_and_stores_what_the_first_did():
    project = ProjectFactory(slug="prepared", overlap=1)
    ItemFactory.create_batch(4, project=project)
    user = MembershipFactory(project=project).user
    connection.close()  # a fresh connection: nothing prepared yet
    first = _judge_through_the_api_path(user, "prepared")
    assert not any("labeling_item" in statement for statement in _prepared())
    second = _judge_through_the_api_path(user, "prepared")
    prepared = _prepared()
    for table in ("labeling_membership", "labeling_assignment", "labeling_item", "labeling_judgment"):
        assert any(table in statement for statement in prepared), table
    assert first.item_id != second.item_id
    assert Assignment.objects.filter(annotator=user, state=Assignment.State.SUBMITTED).count() == 2
    for judgment in (first, second):
        stored = Judgment.objects.get(pk=judgment.pk)
        assert stored.ranking == judgment.ranking
        assert stored.item.votes == 1 and stored.item.is_complete


def test_without_prepared_statements_nothing_is_prepared():
    project = ProjectFactory(slug="unprepared", overlap=1)
    ItemFactory.create_batch(3, project=project)
    user = MembershipFactory(project=project).user
    connection.close()
    options = connection.settings_dict["OPTIONS"]
    threshold = options.pop("prepare_threshold", None)
    try:
        for _ in range(3):
            _judge_through_the_api_path(user, "unprepared")
        assert _prepared() == []
    finally:
        connection.close()
        if threshold is not None:
            options["prepare_threshold"] = threshold
