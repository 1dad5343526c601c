"""My judgments (history) and reopening one (revise), tried by every persona."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from labeling.models import Judgment, JudgmentRevision
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit
from tests.factories import MembershipFactory


def judge(project, user, choice: str = "A", **fields) -> Judgment:
    """One judgment by `user` through the services, `choice` as seen by them."""
    assignment = assignment_next(project=project, annotator=user)
    left, right = assignment.shown_order
    ranking = {"A": [[left], [right]], "B": [[right], [left]], "tie": [[left, right]]}[choice]
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=user, ranking=ranking, **fields)
    return judgment


@pytest.fixture
def mine(project, annotator, items):
    return judge(project, annotator, "A", strength=2, rationale="A is *right*.")


@pytest.fixture
def theirs(project, second_annotator, items):
    return judge(project, second_annotator, "B")


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def history_url(project) -> str:
    return reverse("labeling:history", args=[project.slug])


def revise_url(project, judgment) -> str:
    return reverse("labeling:revise", args=[project.slug, judgment.pk])


# ---- history ----------------------------------------------------------------------------


def test_history_lists_only_my_judgments(project, annotator, mine, theirs):
    second = judge(project, annotator, "tie")
    response = logged_in(annotator).get(history_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    assert [row.judgment for row in response.context["judgments"]] == [second, mine]  # newest first
    for judgment in (mine, second):
        assert judgment.item.external_id in html
        assert revise_url(project, judgment) in html
    assert revise_url(project, theirs) not in html  # their judgment of the same item is not listed
    # What was chosen, as the annotator saw it (A = left): the tie, then "A over B, clearly".
    answers = [row.answer for row in response.context["judgments"]]
    assert answers == ["Tie", "A over B"] and "<strong>A over B</strong>, clearly" in html


def test_history_excerpts_are_plain_text_not_markdown(project, annotator, items):
    from labeling.models import Item

    Item.objects.filter(project=project).update(prompt=[{"role": "user", "content": "Is **this** `code` [ok](x)?"}])
    judge(project, annotator, "B")
    html = logged_in(annotator).get(history_url(project)).content.decode()
    assert "Is this code ok?" in html and "**this**" not in html


def test_history_shows_the_version_and_no_reopen_once_archived(project, annotator, mine):
    html = logged_in(annotator).get(history_url(project)).content.decode()
    assert "<td>1</td>" in html and "Reopen" in html
    project.archived_at = timezone.now()
    project.save(update_fields=["archived_at"])
    html = logged_in(annotator).get(history_url(project)).content.decode()
    assert mine.item.external_id in html and "Reopen" not in html


def test_history_of_someone_with_no_judgments_says_so(project, manager, mine):
    response = logged_in(manager).get(history_url(project))
    assert response.status_code == 200
    assert "No judgments yet." in response.content.decode()
    assert mine.item.external_id not in response.content.decode()


def test_outsider_gets_404_for_history(project, outsider, mine):
    assert logged_in(outsider).get(history_url(project)).status_code == 404


def test_anonymous_is_sent_to_log_in_from_history(client, project):
    response = client.get(history_url(project))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_history_answers_only_get(project, annotator, method):
    assert getattr(logged_in(annotator), method)(history_url(project)).status_code == 405


# ---- revise: GET ------------------------------------------------------------------------


def test_revise_shows_the_form_prefilled_with_the_stored_answer(project, annotator, mine):
    response = logged_in(annotator).get(revise_url(project, mine))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Revise your judgment" in html and "Save revision" in html
    assert f'action="{revise_url(project, mine)}"' in html
    assert 'name="choice" value="A" required checked' in html
    assert 'name="choice" value="B">' in html
    assert 'name="strength" value="2" checked' in html
    assert ">A is *right*.</textarea>" in html
    left, right = mine.assignment.shown_order
    # Shown on the same sides as when it was judged.
    assert html.index(f'data-response-id="{left}"') < html.index(f'data-response-id="{right}"')
    assert "version 1" in html


def test_another_annotators_judgment_is_404(project, annotator, theirs):
    client = logged_in(annotator)
    assert client.get(revise_url(project, theirs)).status_code == 404
    assert client.post(revise_url(project, theirs), {"choice": "A"}).status_code == 404
    assert not JudgmentRevision.objects.exists()


def test_a_manager_cannot_reopen_an_annotators_judgment(project, manager, mine):
    assert logged_in(manager).get(revise_url(project, mine)).status_code == 404


def test_outsider_gets_404_for_revise(project, outsider, mine):
    client = logged_in(outsider)
    assert client.get(revise_url(project, mine)).status_code == 404
    assert client.post(revise_url(project, mine), {"choice": "B"}).status_code == 404
    assert not JudgmentRevision.objects.exists()


def test_judgment_seen_through_another_project_is_404(project, other_project, annotator, mine):
    """Even a member of both projects cannot reach a judgment through the wrong project's URL."""
    MembershipFactory(project=other_project, user=annotator)
    assert logged_in(annotator).get(revise_url(other_project, mine)).status_code == 404


@pytest.mark.parametrize("judgment_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_unknown_judgment_id_is_404(project, annotator, judgment_id):
    url = reverse("labeling:revise", args=[project.slug, judgment_id])
    assert logged_in(annotator).get(url).status_code == 404


def test_anonymous_is_sent_to_log_in_from_revise(client, project, mine):
    response = client.get(revise_url(project, mine))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = client.post(revise_url(project, mine), {"choice": "B"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert not JudgmentRevision.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_revise_answers_only_get_and_post(project, annotator, mine, method):
    assert getattr(logged_in(annotator), method)(revise_url(project, mine)).status_code == 405


# ---- revise: POST -----------------------------------------------------------------------


def test_post_stores_a_revision_and_redirects_to_history(project, annotator, mine):
    left, right = mine.assignment.shown_order
    client = logged_in(annotator)
    response = client.post(
        revise_url(project, mine), {"choice": "B", "strength": "3", "rationale": "B, on reflection."}
    )
    assert response.status_code == 302 and response["Location"] == history_url(project)
    mine.refresh_from_db()
    assert (mine.revision, mine.ranking, mine.strength, mine.rationale) == (
        2,
        [[right], [left]],
        3,
        "B, on reflection.",
    )
    old = JudgmentRevision.objects.get(judgment=mine)
    assert (old.revision, old.ranking, old.strength, old.rationale) == (1, [[left], [right]], 2, "A is *right*.")
    assert "<td>2</td>" in client.get(history_url(project)).content.decode()


def test_invalid_post_shows_the_error_and_keeps_the_stored_version(project, annotator, mine):
    response = logged_in(annotator).post(revise_url(project, mine), {"strength": "2"})
    assert response.status_code == 422
    assert "Choose A, B or tie." in response.content.decode()
    mine.refresh_from_db()
    assert mine.revision == 1 and not JudgmentRevision.objects.exists()


def test_post_on_an_archived_project_is_refused(project, annotator, mine):
    project.archived_at = timezone.now()
    project.save(update_fields=["archived_at"])
    response = logged_in(annotator).post(revise_url(project, mine), {"choice": "B"})
    assert response.status_code == 422
    assert "archived" in response.content.decode()
    mine.refresh_from_db()
    assert mine.revision == 1 and not JudgmentRevision.objects.exists()


def test_csrf_is_enforced_on_revise(project, annotator, mine):
    client = logged_in(annotator, enforce_csrf_checks=True)
    response = client.post(revise_url(project, mine), {"choice": "B"})
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.revision == 1 and not JudgmentRevision.objects.exists()


def test_csrf_token_from_the_form_is_accepted(project, annotator, mine):
    client = logged_in(annotator, enforce_csrf_checks=True)
    page = client.get(revise_url(project, mine))
    token = page.context["csrf_token"]
    response = client.post(revise_url(project, mine), {"choice": "B", "csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert Judgment.objects.get(pk=mine.pk).revision == 2
