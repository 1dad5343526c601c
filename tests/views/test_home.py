"""The home page: every project of the user with their role and its progress."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory


def home_rows(client, user):
    client.force_login(user)
    response = client.get(reverse("labeling:home"))
    assert response.status_code == 200
    return {row["project"].slug: row for row in response.context["rows"]}


def test_each_project_shows_my_judgments_and_its_progress(client, db):
    user = UserFactory(username="multi")
    judged = ProjectFactory(slug="judged")
    MembershipFactory(project=judged, user=user)
    ItemFactory.create_batch(3, project=judged)
    managed = ProjectFactory(slug="managed")
    MembershipFactory(project=managed, user=user, role="manager")
    ItemFactory.create_batch(2, project=managed)
    ProjectFactory(slug="not-mine")
    assignment = assignment_next(project=judged, annotator=user)
    judgment_submit(
        assignment_id=assignment.pk, annotator=user, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )
    rows = home_rows(client, user)
    assert set(rows) == {"judged", "managed"}
    assert (rows["judged"]["mine"], rows["judged"]["complete"], rows["judged"]["items"]) == (1, 1, 3)
    assert (rows["managed"]["mine"], rows["managed"]["complete"], rows["managed"]["items"]) == (0, 0, 2)
    assert rows["managed"]["role"] == "manager"


def test_queries_do_not_grow_with_the_number_of_projects(client, db):
    user = UserFactory(username="busy")

    def queries_with(projects: int) -> int:
        for _ in range(projects):
            project = ProjectFactory()
            MembershipFactory(project=project, user=user)
            ItemFactory(project=project)
        client.force_login(user)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("labeling:home")).status_code == 200
        return len(captured)

    assert queries_with(2) == queries_with(8)
