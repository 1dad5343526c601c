"""Shared by the view tests: a project every annotator has judged through the services."""

import pytest

from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice


def judge_all(project, annotators, choice="A"):
    for annotator in annotators:
        while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
            ranking = ranking_from_choice(assignment=assignment, choice=choice)
            judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking, strength=2)


@pytest.fixture
def judged(project, annotator, second_annotator, items):
    judge_all(project, [annotator, second_annotator])
    return project
