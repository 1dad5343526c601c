"""The annotate page's budgets, and static files served compressed in the documented deployment."""

import re

from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from whitenoise.middleware import WhiteNoiseMiddleware

SCRIPT_BUDGET = 100 * 1024
STYLE_BUDGET = 60 * 1024


def _static_bytes(html: str, pattern: str) -> dict[str, int]:
    sizes = {}
    for url in re.findall(pattern, html):
        path = finders.find(url.removeprefix("/static/"))
        assert path is not None, url
        with open(path, "rb") as file:
            sizes[url] = len(file.read())
    return sizes


def test_the_annotate_page_stays_within_its_script_and_style_budgets(client, annotator, project, items):
    client.force_login(annotator)
    html = client.get(reverse("labeling:annotate", args=[project.slug])).content.decode()

    scripts = _static_bytes(html, r'<script[^>]+src="([^"]+)"')
    styles = _static_bytes(html, r'<link rel="stylesheet" href="([^"]+)"')

    assert scripts and sum(scripts.values()) <= SCRIPT_BUDGET, scripts
    assert styles and sum(styles.values()) <= STYLE_BUDGET, styles


def test_collected_static_files_are_served_compressed(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--noinput", verbosity=0)
    serve = WhiteNoiseMiddleware(lambda request: HttpResponse(status=404))  # reads STATIC_ROOT as it starts
    request = RequestFactory().get("/static/labeling/app.css", headers={"accept-encoding": "gzip"})

    response = serve(request)

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "max-age" in response["Cache-Control"]
