import re

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Assignment, Judgment
from labeling.services.items import item_withdraw
from tests.factories import PASSWORD


@pytest.fixture
def client_for(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def _current_assignment(user):
    return Assignment.objects.get(annotator=user, state=Assignment.State.ACTIVE, queued=False)


def test_anonymous_is_sent_to_log_in(client, project):
    response = client.get(reverse("labeling:annotate", args=[project.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_then_annotate(client, annotator, project, items):
    response = client.post(reverse("login"), {"username": "anna", "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(reverse("labeling:annotate", args=[project.slug]))
    assert page.status_code == 200
    assert b"Which response is better?" in page.content


def test_annotate_page_shows_prompt_both_responses_progress_and_guidelines(client_for, annotator, project, items):
    page = client_for(annotator).get(reverse("labeling:annotate", args=[project.slug]))
    html = page.content.decode()
    assignment = _current_assignment(annotator)
    assert assignment.item.prompt[0]["content"] in html
    for response in assignment.item.responses.all():
        assert response.content in html
    assert 'data-testid="progress"' in html and 'You judged <strong data-testid="mine">0</strong>' in html
    assert "<strong>better</strong>" in html  # guidelines rendered as markdown
    left_id = assignment.shown_order[0]
    assert re.search(rf'data-testid="response-A" data-response-id="{left_id}"', html)


def test_model_names_are_hidden_unless_the_project_shows_them(client_for, annotator, project, items):
    html = client_for(annotator).get(reverse("labeling:annotate", args=[project.slug])).content.decode()
    assert "model-a" not in html and "model-b" not in html
    project.show_model_names = True
    project.save()
    html = client_for(annotator).get(reverse("labeling:annotate", args=[project.slug])).content.decode()
    assert "model-a" in html


def test_htmx_submit_stores_and_returns_the_next_item_partial(client_for, annotator, project, items):
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    response = client.post(
        reverse("labeling:judge", args=[project.slug, first.pk]), {"choice": "B"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="item"') and "<html" not in html
    judgment = Judgment.objects.get(assignment=first)
    assert judgment.ranking == [[first.shown_order[1]], [first.shown_order[0]]]
    second = _current_assignment(annotator)
    assert second.pk != first.pk and str(second.pk) in html
    assert 'You judged <strong data-testid="mine">1</strong>' in html


def test_plain_post_without_javascript_redirects_to_the_next_item(client_for, annotator, project, items):
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    response = client.post(reverse("labeling:judge", args=[project.slug, first.pk]), {"choice": "A"})
    judgment = Judgment.objects.get(assignment=first)
    assert response.status_code == 302
    assert response["Location"] == reverse("labeling:annotate", args=[project.slug]) + f"?judged={judgment.pk}"
    page = client.get(response["Location"]).content.decode()
    assert reverse("labeling:revise", args=[project.slug, judgment.pk]) in page  # a way back to the judgment just made


def test_double_submit_stores_one_judgment(client_for, annotator, project, items):
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    url = reverse("labeling:judge", args=[project.slug, first.pk])
    client.post(url, {"choice": "A"}, headers={"HX-Request": "true"})
    client.post(url, {"choice": "B"}, headers={"HX-Request": "true"})
    assert Judgment.objects.filter(assignment=first).count() == 1
    assert Judgment.objects.get(assignment=first).ranking[0] == [first.shown_order[0]]


def test_missing_choice_shows_an_error_and_stores_nothing(client_for, annotator, project, items):
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    response = client.post(reverse("labeling:judge", args=[project.slug, first.pk]), {}, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert b"Choose A, B or tie" in response.content
    assert not Judgment.objects.exists()


def test_skip_moves_on(client_for, annotator, project, items):
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    response = client.post(reverse("labeling:skip", args=[project.slug, first.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    first.refresh_from_db()
    assert first.state == Assignment.State.SKIPPED
    assert _current_assignment(annotator).item_id != first.item_id


def test_skipping_a_judged_item_is_refused_and_keeps_the_judgment(client_for, annotator, project, items):
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    judged = client.post(reverse("labeling:judge", args=[project.slug, first.pk]), {"choice": "A"})
    assert judged.status_code in (200, 302)
    response = client.post(reverse("labeling:skip", args=[project.slug, first.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert b"already judged" in response.content
    first.refresh_from_db()
    assert first.state == Assignment.State.SUBMITTED
    assert Judgment.objects.filter(assignment=first).count() == 1


def test_done_when_nothing_is_left(client_for, annotator, project):
    html = client_for(annotator).get(reverse("labeling:annotate", args=[project.slug])).content.decode()
    assert 'data-testid="done"' in html


def test_outsider_gets_404_on_the_page_and_on_someone_elses_assignment(client, annotator, outsider, project, items):
    client.force_login(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    assignment = _current_assignment(annotator)
    client.force_login(outsider)
    assert client.get(reverse("labeling:annotate", args=[project.slug])).status_code == 404
    response = client.post(reverse("labeling:judge", args=[project.slug, assignment.pk]), {"choice": "A"})
    assert response.status_code == 404
    assert not Judgment.objects.exists()


def test_another_annotator_cannot_submit_my_assignment(client, annotator, second_annotator, project, items):
    client.force_login(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    assignment = _current_assignment(annotator)
    client.force_login(second_annotator)
    assert (
        client.post(reverse("labeling:judge", args=[project.slug, assignment.pk]), {"choice": "A"}).status_code == 404
    )
    assert client.post(reverse("labeling:judge", args=[project.slug, "not-a-uuid"]), {"choice": "A"}).status_code == 404


def test_wrong_method_is_refused(client_for, annotator, project, items):
    client = client_for(annotator)
    assert client.post(reverse("labeling:annotate", args=[project.slug])).status_code == 405
    client.get(reverse("labeling:annotate", args=[project.slug]))
    assert (
        client.get(reverse("labeling:judge", args=[project.slug, _current_assignment(annotator).pk])).status_code == 405
    )


def test_csrf_is_enforced_on_submit(annotator, project, items):
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    assignment = _current_assignment(annotator)
    response = client.post(reverse("labeling:judge", args=[project.slug, assignment.pk]), {"choice": "A"})
    assert response.status_code == 403
    assert not Judgment.objects.exists()


def test_home_lists_only_my_projects(client_for, annotator, other_project, project):
    html = client_for(annotator).get(reverse("labeling:home")).content.decode()
    assert project.title in html and other_project.title not in html


def test_overview_is_for_managers_only(client, manager, annotator, outsider, project):
    url = reverse("labeling:project_overview", args=[project.slug])
    client.force_login(manager)
    assert client.get(url).status_code == 200
    client.force_login(annotator)
    assert client.get(url).status_code == 403  # she works in the project: "not yours to manage" leaks nothing
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_pages_carry_a_csp_without_inline_script(client_for, annotator, project, items):
    response = client_for(annotator).get(reverse("labeling:annotate", args=[project.slug]))
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in response.content.decode()


def test_a_judgment_on_an_item_withdrawn_meanwhile_says_so_and_shows_the_next_item(
    client_for, annotator, project, items
):

    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    first = _current_assignment(annotator)
    item_withdraw(item=first.item)  # a manager withdraws it while the annotator reads

    response = client.post(
        reverse("labeling:judge", args=[project.slug, first.pk]), {"choice": "A"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "This item was withdrawn by a manager" in html
    assert not Judgment.objects.filter(assignment=first).exists()
    following = _current_assignment(annotator)
    assert following.item_id != first.item_id and str(following.pk) in html


def test_a_criterion_asked_once_per_item_is_shown_once_not_under_every_response(client_for, annotator, project, items):
    project.criteria = [
        {"key": "safety", "label": "Is the exchange safe?", "type": "likert"},
        {"key": "facts", "label": "Factually correct?", "type": "likert", "per_response": True},
    ]
    project.save(update_fields=["criteria"])
    html = client_for(annotator).get(reverse("labeling:annotate", args=[project.slug])).content.decode()
    assignment = _current_assignment(annotator)
    # (The page holds the next item's form too, so each name may appear twice.)
    assert set(re.findall(r'name="criteria\.safety[^"]*"', html)) == {'name="criteria.safety"'}
    assert {f'name="criteria.facts.{pk}"' for pk in assignment.shown_order} <= set(
        re.findall(r'name="criteria\.facts[^"]*"', html)
    )
    assert 'name="criteria.facts"' not in html


CRITERIA = [
    {"key": "safety", "label": "Is the exchange safe?", "type": "likert", "per_response": False, "required": False},
    {"key": "facts", "label": "Factually correct?", "type": "likert", "per_response": True, "required": False},
]


def _checked(html: str, name: str) -> set[str]:
    """The values of the checked radio buttons called `name`."""
    return set(re.findall(rf'name="{re.escape(name)}" value="(\d)" checked', html))


def test_a_refused_judgment_keeps_the_item_and_per_response_answers(client_for, annotator, project, items):
    project.criteria = CRITERIA
    project.save(update_fields=["criteria"])
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    assignment = _current_assignment(annotator)
    left, right = assignment.shown_order
    posted = {"criteria.safety": "4", f"criteria.facts.{left}": "2", f"criteria.facts.{right}": "5"}  # no choice
    response = client.post(reverse("labeling:judge", args=[project.slug, assignment.pk]), posted)
    assert response.status_code == 422 and "Choose A, B or tie" in response.content.decode()
    html = response.content.decode()
    assert _checked(html, "criteria.safety") == {"4"}
    assert _checked(html, f"criteria.facts.{left}") == {"2"} and _checked(html, f"criteria.facts.{right}") == {"5"}
    assert not Judgment.objects.exists()


def test_reopening_a_judgment_shows_its_item_and_per_response_answers(client_for, annotator, project, items):
    project.criteria = CRITERIA
    project.save(update_fields=["criteria"])
    client = client_for(annotator)
    client.get(reverse("labeling:annotate", args=[project.slug]))
    assignment = _current_assignment(annotator)
    left, right = assignment.shown_order
    posted = {"choice": "A", "criteria.safety": "3", f"criteria.facts.{left}": "1", f"criteria.facts.{right}": "4"}
    client.post(reverse("labeling:judge", args=[project.slug, assignment.pk]), posted)
    judgment = Judgment.objects.get(assignment=assignment)
    assert judgment.criteria == {"safety": 3, "facts": {str(left): 1, str(right): 4}}
    html = client.get(reverse("labeling:revise", args=[project.slug, judgment.pk])).content.decode()
    assert _checked(html, "criteria.safety") == {"3"}
    assert _checked(html, f"criteria.facts.{left}") == {"1"} and _checked(html, f"criteria.facts.{right}") == {"4"}
