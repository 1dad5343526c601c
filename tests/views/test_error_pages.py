"""Refusals and failures are pages of the app: its look, what happened, and a way back."""

from django.template.loader import render_to_string
from django.urls import reverse


def test_a_missing_page_is_the_apps_404_with_a_way_back(client, annotator, settings):
    settings.DEBUG = False
    client.force_login(annotator)
    response = client.get("/p/no-such-project/")
    html = response.content.decode()
    assert response.status_code == 404
    assert 'data-testid="error-page"' in html and "Nothing here" in html
    assert f'href="{reverse("labeling:home")}"' in html and 'class="topbar"' in html


def test_a_manager_page_answers_an_annotator_with_the_apps_403(client, annotator, project):
    client.force_login(annotator)
    response = client.get(reverse("labeling:manage_settings", args=[project.slug]))
    html = response.content.decode()
    assert response.status_code == 403
    assert "Only the project&#x27;s managers may do this." in html and "Back to your projects" in html


def test_the_500_page_needs_no_request_and_offers_a_way_back(db):
    html = render_to_string("500.html")  # Django renders it without a request or context processors
    assert 'data-testid="error-page"' in html and "Something went wrong on our side" in html and 'href="/"' in html
