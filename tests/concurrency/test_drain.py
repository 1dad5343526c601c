"""16 annotators drain a 2,000-item project with overlap 3, at once, on PostgreSQL."""

import json
import threading
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.db.models import Count

from labeling.models import Assignment, Item, Judgment, Membership, Project, Response
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from labeling.services.tokens import token_create
from tests.factories import UserFactory

ANNOTATORS = 16
ITEMS = 2000
OVERLAP = 3


def _project(slug: str) -> tuple[Project, list]:
    project = Project.objects.create(slug=slug, title=slug, overlap=OVERLAP)
    items = Item.objects.bulk_create(
        Item(project=project, external_id=f"i{n}", prompt=[{"role": "user", "content": f"q{n}"}], target=OVERLAP)
        for n in range(ITEMS)
    )
    Response.objects.bulk_create(
        Response(item=item, position=position, model=f"m{position}", content=f"answer {position} to {item.external_id}")
        for item in items
        for position in range(2)
    )
    users = [UserFactory(username=f"{slug}-annotator-{n}") for n in range(ANNOTATORS)]
    Membership.objects.bulk_create(Membership(project=project, user=user) for user in users)
    return project, users


def _assert_drained(project: Project, submitted: Counter) -> None:
    per_item = Judgment.objects.filter(project=project).values("item").annotate(n=Count("id"))
    assert all(row["n"] <= OVERLAP for row in per_item), "an item exceeded its overlap"
    assert Item.objects.filter(project=project, is_complete=False).count() == 0
    assert Judgment.objects.filter(project=project).count() == ITEMS * OVERLAP == sum(submitted.values())
    repeats = Judgment.objects.filter(project=project).values("item", "annotator").annotate(n=Count("id"))
    assert all(row["n"] == 1 for row in repeats), "an annotator judged an item twice"
    assert not Assignment.objects.filter(project=project, state=Assignment.State.ACTIVE).exists()
    for user_id, count in submitted.items():
        assert Judgment.objects.filter(project=project, annotator_id=user_id).count() == count


@pytest.mark.django_db(transaction=True)
def test_sixteen_annotators_drain_through_the_services():
    project, users = _project("drain-services")
    submitted: Counter = Counter()
    lock = threading.Lock()

    def work(user):
        done = 0
        try:
            while (assignment := assignment_next(project=project, annotator=user)) is not None:
                choice = "A" if assignment.item_id % 3 else "B"
                ranking = ranking_from_choice(assignment=assignment, choice=choice)
                _, created = judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=ranking)
                done += created
        finally:
            connections.close_all()
        with lock:
            submitted[user.pk] += done

    with ThreadPoolExecutor(max_workers=ANNOTATORS) as pool:
        list(pool.map(work, users))
    _assert_drained(project, submitted)


@pytest.mark.django_db(transaction=True)
def test_sixteen_annotators_drain_through_the_http_api(live_server):
    project, users = _project("drain-api")
    tokens = {user.pk: token_create(username=user.username)[1] for user in users}
    submitted: Counter = Counter()
    lock = threading.Lock()

    def call(token: str, path: str, body: dict | None = None):
        request = urllib.request.Request(  # noqa: S310 - our own live server
            live_server.url + path,
            data=json.dumps(body or {}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own live server
            return response.status, response.read()

    def work(user):
        token, done = tokens[user.pk], 0
        while True:
            status, body = call(token, f"/api/projects/{project.slug}/next")
            if status == 204:
                break
            lease = json.loads(body)
            ids = [response["id"] for response in lease["item"]["responses"]]
            status, _ = call(
                token, f"/api/assignments/{lease['assignment']}/judgment", {"ranking": [[ids[0]], [ids[1]]]}
            )
            done += status == 201
        with lock:
            submitted[user.pk] += done

    with ThreadPoolExecutor(max_workers=ANNOTATORS) as pool:
        list(pool.map(work, users))
    _assert_drained(project, submitted)
