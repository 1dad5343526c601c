"""Finding and submitting work costs a small, constant number of queries, whatever the project's size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Item, Response
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.tokens import token_create
from tests.factories import MembershipFactory, ProjectFactory

MAX_NEXT_QUERIES = 13
MAX_SUBMIT_QUERIES = 10


def _project(size: int, overlap: int = 3):
    project = ProjectFactory(slug=f"size-{size}", overlap=overlap)
    items = Item.objects.bulk_create(
        Item(project=project, external_id=f"i{n}", prompt=[{"role": "user", "content": "q"}], target=overlap)
        for n in range(size)
    )
    Response.objects.bulk_create(
        Response(item=item, position=position, content=f"a{position}") for item in items for position in range(2)
    )
    annotators = [MembershipFactory(project=project).user for _ in range(3)]
    return project, annotators


def _round_trip(project, annotator):
    with CaptureQueriesContext(connection) as next_queries:
        assignment = assignment_next(project=project, annotator=annotator)
    ranking = ranking_from_choice(assignment=assignment, choice="A")
    with CaptureQueriesContext(connection) as submit_queries:
        judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking)
    return len(next_queries), len(submit_queries)


def _counts(size: int) -> list[tuple[int, int]]:
    project, annotators = _project(size)
    counts = []
    # Several rounds, so the annotators' histories and half-filled items exist.
    for _ in range(5):
        for annotator in annotators:
            counts.append(_round_trip(project, annotator))
    return counts


@pytest.mark.django_db
def test_next_and_submit_cost_the_same_at_10_and_10000_items():
    small, large = _counts(10), _counts(10_000)
    assert max(count for count, _ in small + large) <= MAX_NEXT_QUERIES
    assert max(count for _, count in small + large) <= MAX_SUBMIT_QUERIES
    assert small == large


@pytest.mark.parametrize("size", [10, 10_000])
@pytest.mark.django_db
def test_api_round_trip_queries_stay_constant(client, size, django_assert_max_num_queries):
    project, annotators = _project(size)
    token = token_create(username=annotators[0].username)[1]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        with django_assert_max_num_queries(MAX_NEXT_QUERIES + 4):
            body = client.post(f"/api/projects/{project.slug}/next", headers=headers).json()
        ids = [response["id"] for response in body["item"]["responses"]]
        with django_assert_max_num_queries(MAX_SUBMIT_QUERIES + 3):
            response = client.post(
                f"/api/assignments/{body['assignment']}/judgment",
                {"ranking": [[ids[0]], [ids[1]]]},
                content_type="application/json",
                headers=headers,
            )
        assert response.status_code == 201


@pytest.mark.parametrize("size", [10, 10_000])
@pytest.mark.django_db
def test_annotate_page_queries_stay_constant(client, size, django_assert_max_num_queries):
    project, annotators = _project(size)
    client.force_login(annotators[0])
    client.get(f"/p/{project.slug}/annotate/")
    for _ in range(3):
        page = client.get(f"/p/{project.slug}/annotate/")
        assignment_id = page.context["assignment"].pk
        # submit, then the next item and the one leased ahead of it, then the progress figures
        with django_assert_max_num_queries(2 * MAX_NEXT_QUERIES + MAX_SUBMIT_QUERIES + 8):
            response = client.post(
                f"/p/{project.slug}/annotate/{assignment_id}/judge/", {"choice": "A"}, headers={"HX-Request": "true"}
            )
        assert response.status_code == 200
