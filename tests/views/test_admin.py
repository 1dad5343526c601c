import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from labeling.models import Judgment
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice

MODELS = ["project", "item", "assignment", "judgment", "judgmentrevision", "membership", "apitoken"]


@pytest.fixture
def admin_client(client, db):
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "x")
    client.force_login(admin)
    return client


@pytest.mark.parametrize("model", MODELS)
def test_superuser_sees_every_model(admin_client, model, project, annotator, items):
    assignment = assignment_next(project=project, annotator=annotator)
    judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )
    response = admin_client.get(reverse(f"admin:labeling_{model}_changelist") + "?q=a")
    assert response.status_code == 200


def test_judgments_are_read_only_in_the_admin(admin_client, project, annotator, items):
    assignment = assignment_next(project=project, annotator=annotator)
    judgment, _ = judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )
    url = reverse("admin:labeling_judgment_change", args=[judgment.pk])
    assert admin_client.get(url).status_code == 200
    admin_client.post(url, {"rationale": "tampered"})
    assert Judgment.objects.get(pk=judgment.pk).rationale == ""
    assert admin_client.get(reverse("admin:labeling_judgment_add")).status_code == 403


def test_annotators_cannot_reach_the_admin(client, annotator):
    client.force_login(annotator)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "login" in response["Location"]
