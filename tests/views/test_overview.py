"""The manager's overview page: who may see it, what it shows, what it costs."""

import re

import pytest
from django.urls import reverse

from labeling.services.metrics import project_stats
from tests.factories import ItemFactory, MembershipFactory
from tests.views.conftest import judge_all


@pytest.fixture
def url(project):
    return reverse("labeling:project_overview", args=[project.slug])


def test_anonymous_is_sent_to_log_in(client, url):
    response = client.get(url)

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_annotator_gets_403(client, annotator, url):
    client.force_login(annotator)

    assert client.get(url).status_code == 403


def test_outsider_gets_404(client, outsider, url):
    client.force_login(outsider)

    assert client.get(url).status_code == 404


def test_post_is_not_allowed(client, manager, url):
    client.force_login(manager)

    assert client.post(url).status_code == 405


def test_manager_sees_progress_agreement_annotators_leaderboard_and_win_rates(client, manager, judged, url):
    client.force_login(manager)

    response = client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    stats = project_stats(project=judged)
    for section in ("progress", "agreement", "annotators", "leaderboard"):
        assert f'id="{section}"' in html
    assert re.search(r"<dt>Judgments</dt><dd>10</dd>", html)
    assert "<td>anna</td>" in html and "<td>bert</td>" in html
    leaderboard = html[html.index('id="leaderboard-table"') :]
    assert leaderboard.index("model-") >= 0
    for row in stats["leaderboard"]:
        assert f"<td>{row['model']}</td><td>{row['score']}</td>" in leaderboard
        assert f"{row['ci_low']} \N{EN DASH} {row['ci_high']}" in leaderboard
    assert 'id="win-rate-table"' in html and 'class="chart heatmap"' in html
    assert html.count("<svg") >= 4  # progress bar, per day, leaderboard, win rates
    assert 'id="per-day"' in html


def test_page_numbers_are_the_stats_document(client, manager, judged, url):
    client.force_login(manager)
    stats = project_stats(project=judged)

    html = client.get(url).content.decode()

    assert f"<td>{stats['agreement']['pairwise']}</td>" in html
    alpha = stats["agreement"]["krippendorff_alpha"]
    assert f"<td>{'n/a' if alpha is None else alpha}</td>" in html


def test_empty_project_renders(client, manager, url):
    client.force_login(manager)

    response = client.get(url)

    assert response.status_code == 200
    assert "No judgments yet." in response.content.decode()


def test_page_has_no_inline_style_or_script(client, manager, judged, url):
    client.force_login(manager)

    html = client.get(url).content.decode()

    assert " style=" not in html and "<style" not in html
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", html))
    assert "labeling/dashboard.css" in html


def test_query_count_does_not_grow_with_the_project(
    client, manager, project, annotator, second_annotator, url, django_assert_max_num_queries
):
    client.force_login(manager)
    ItemFactory.create_batch(2, project=project)
    # New judgments change the cache key: each first view below computes the document afresh.
    judge_all(project, [annotator, second_annotator])
    with django_assert_max_num_queries(24) as small:
        client.get(url)
    more = [MembershipFactory(project=project).user for _ in range(3)]
    ItemFactory.create_batch(20, project=project)
    judge_all(project, [annotator, second_annotator, *more])

    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


def test_a_second_view_reads_the_cached_document(client, manager, judged, url, django_assert_max_num_queries):
    client.force_login(manager)
    client.get(url)

    # Session and user, the membership check, two counts, the stored document and the tabs' role:
    # no judgment is read.
    with django_assert_max_num_queries(7):
        assert client.get(url).status_code == 200


def test_a_new_judgment_shows_at_once_on_a_small_project(client, manager, judged, annotator, url):
    client.force_login(manager)
    assert "<dd>10</dd>" in client.get(url).content.decode()
    ItemFactory(project=judged)
    judge_all(judged, [annotator])

    html = client.get(url).content.decode()

    # At or under the inline limit the figures are computed for the request: never stale.
    assert "<dd>11</dd>" in html and "stale-note" not in html and "stats/refresh" not in html
