"""Races that real annotators produce: two tabs, double clicks, a crowd on one item."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from labeling.models import Assignment, Item, Judgment
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


def _at_once(function, arguments):
    """Run function(argument) in threads released together; close their connections."""
    barrier = threading.Barrier(len(arguments))

    def run(argument):
        try:
            barrier.wait()
            return function(argument)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
        return list(pool.map(run, arguments))


def test_two_tabs_of_one_annotator_get_the_same_assignment():
    project = ProjectFactory(slug="tabs", overlap=1)
    annotator = MembershipFactory(project=project).user
    ItemFactory.create_batch(20, project=project)
    results = _at_once(lambda _: assignment_next(project=project, annotator=annotator).pk, range(THREADS))
    assert len(set(results)) == 1
    assert Assignment.objects.filter(annotator=annotator, state=Assignment.State.ACTIVE).count() == 1
    assert sum(Item.objects.values_list("filled", flat=True)) == 1


def test_a_double_click_stores_one_judgment():
    project = ProjectFactory(slug="clicks", overlap=1)
    annotator = MembershipFactory(project=project).user
    ItemFactory(project=project)
    assignment = assignment_next(project=project, annotator=annotator)
    ranking = ranking_from_choice(assignment=assignment, choice="A")
    results = _at_once(
        lambda _: judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking), range(THREADS)
    )
    assert len({judgment.pk for judgment, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Judgment.objects.count() == 1
    assert Item.objects.get().votes == 1


def test_a_crowd_never_overfills_an_item():
    project = ProjectFactory(slug="crowd", overlap=2)
    annotators = [MembershipFactory(project=project).user for _ in range(THREADS)]
    item = ItemFactory(project=project)
    claims = _at_once(lambda annotator: assignment_next(project=project, annotator=annotator), annotators)
    assert sum(claim is not None for claim in claims) == 2
    item.refresh_from_db()
    assert item.filled == 2
    assert Assignment.objects.filter(item=item, state=Assignment.State.ACTIVE).count() == 2
