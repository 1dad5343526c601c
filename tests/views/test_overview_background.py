"""The dashboard of a big project: the stored figures at once, a background refresh, polling.

"Big" is set low here (LABELING_STATS_INLINE_JUDGMENTS = 0): every project is refreshed
in the background, as one of a million judgments is.
"""

from datetime import timedelta

import krippendorff
import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks import default_task_backend

from labeling.models import StatsSnapshot
from labeling.services.jobs import refresh_stats
from labeling.services.metrics import project_stats
from labeling.services.metrics.snapshot import stats_refresh_claim
from tests.factories import ItemFactory
from tests.views.conftest import judge_all

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}


@pytest.fixture(autouse=True)
def _everything_is_big(settings):
    settings.LABELING_STATS_INLINE_JUDGMENTS = 0


@pytest.fixture
def url(project):
    return reverse("labeling:project_overview", args=[project.slug])


@pytest.fixture
def refresh_url(project):
    return reverse("labeling:project_stats_refresh", args=[project.slug])


@pytest.fixture
def status_url(project):
    return reverse("labeling:project_stats_status", args=[project.slug])


@pytest.fixture
def computed(client, manager, judged, refresh_url):
    """The project's figures computed once (through the no-JavaScript button, inline backend)."""
    client.force_login(manager)
    assert client.post(refresh_url).status_code == 302
    return StatsSnapshot.objects.get(project=judged)


def _one_more_judgment(project, annotator):
    ItemFactory(project=project)
    judge_all(project, [annotator])


def test_first_view_shows_computing_and_asks_for_one_refresh(
    client, manager, judged, url, refresh_url, status_url, settings
):
    settings.TASKS = DUMMY
    client.force_login(manager)

    html = client.get(url).content.decode()

    assert "Computing…" in html and "leaderboard-table" not in html
    assert f'hx-post="{refresh_url}"' in html and 'hx-trigger="load"' in html
    status = client.post(refresh_url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in status and "Refreshing the figures for 10 judgments" in status
    # A second manager (or a reload) while it is queued queues nothing more.
    client.post(refresh_url, HTTP_HX_REQUEST="true")
    assert len(default_task_backend.results) == 1
    assert 'hx-trigger="every 2s"' in client.get(status_url, HTTP_HX_REQUEST="true").content.decode()

    refresh_stats.call(judged.pk)  # what the worker does

    response = client.get(status_url, {"shown": ""}, HTTP_HX_REQUEST="true")
    assert response.headers["HX-Refresh"] == "true"
    html = client.get(url).content.decode()
    assert "leaderboard-table" in html and "Computing…" not in html and "stale-note" not in html
    assert StatsSnapshot.objects.get(project=judged).refresh_claimed_at is None


def test_a_stale_document_is_shown_with_its_age_then_refreshed(client, computed, annotator, url, refresh_url, settings):
    project = computed.project
    shown = computed.document["computed_at"]
    _one_more_judgment(project, annotator)

    html = client.get(url).content.decode()

    assert f'<time datetime="{shown}">' in html
    assert "1 new judgment since" in html and "<dd>11</dd>" in html  # live count, stored figures
    assert 'hx-trigger="load"' in html and "leaderboard-table" in html
    response = client.post(refresh_url, {"shown": shown}, HTTP_HX_REQUEST="true")  # inline backend: runs here
    assert response.headers["HX-Refresh"] == "true"
    html = client.get(url).content.decode()
    assert "stale-note" not in html and 'hx-trigger="load"' not in html
    assert StatsSnapshot.objects.get(project=project).judgments == 11


def test_figures_refreshed_in_the_background_are_the_commands(client, computed, annotator, settings):
    project = computed.project
    _one_more_judgment(project, annotator)
    settings.TASKS = DUMMY
    client.post(reverse("labeling:project_stats_refresh", args=[project.slug]))

    refresh_stats.call(project.pk)

    stored = StatsSnapshot.objects.get(project=project).document
    assert project_stats(project=project) == {"items": 6, "items_complete": 5, "judgments": 11, **stored}


def test_a_failed_refresh_keeps_the_last_document(client, computed, annotator, url, refresh_url, monkeypatch):
    project = computed.project
    _one_more_judgment(project, annotator)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(krippendorff, "alpha", broken)  # outside our code: the statistics package

    client.post(refresh_url)
    html = client.get(url).content.decode()

    snapshot = StatsSnapshot.objects.get(project=project)
    assert snapshot.document == computed.document and snapshot.refresh_claimed_at is None
    assert "The refresh failed (RuntimeError: out of memory)." in html and "leaderboard-table" in html
    # No automatic retry on every view after a failure: the button asks again.
    assert 'hx-trigger="load"' not in html and "Refresh the figures now" in html


def test_a_refused_refresh_keeps_the_last_document_and_frees_the_slot(
    client, computed, annotator, url, refresh_url, settings, monkeypatch
):
    project = computed.project
    _one_more_judgment(project, annotator)
    settings.TASKS = DUMMY

    def refuse(*args, **kwargs):
        raise ConnectionError("queue unavailable")

    monkeypatch.setattr("django_tasks.backends.dummy.DummyBackend.enqueue", refuse)  # outside our code

    client.post(refresh_url)

    snapshot = StatsSnapshot.objects.get(project=project)
    assert snapshot.document == computed.document and snapshot.refresh_claimed_at is None
    assert "could not be queued (ConnectionError)" in client.get(url).content.decode()


def test_a_claim_left_by_a_dead_worker_is_taken_again(computed):
    project = computed.project
    assert stats_refresh_claim(project=project)
    assert not stats_refresh_claim(project=project)
    StatsSnapshot.objects.filter(project=project).update(refresh_claimed_at=timezone.now() - timedelta(hours=1))

    assert stats_refresh_claim(project=project)


def test_query_count_of_a_stale_page_does_not_grow_with_the_project(
    client, computed, annotator, second_annotator, url, django_assert_max_num_queries
):
    project = computed.project
    _one_more_judgment(project, annotator)
    with django_assert_max_num_queries(8) as small:
        client.get(url)
    ItemFactory.create_batch(20, project=project)
    judge_all(project, [annotator, second_annotator])

    with django_assert_max_num_queries(len(small.captured_queries)):
        assert "42 new judgments since" in client.get(url).content.decode()


def test_annotators_get_403_and_outsiders_404(client, annotator, outsider, refresh_url, status_url):
    for user, status in ((annotator, 403), (outsider, 404)):
        client.force_login(user)
        assert client.post(refresh_url).status_code == status
        assert client.get(status_url).status_code == status


def test_refresh_needs_post(client, manager, refresh_url, status_url):
    client.force_login(manager)

    assert client.get(refresh_url).status_code == 405
    assert client.post(status_url).status_code == 405


def test_old_figures_with_no_new_judgment_say_why_and_how_long_the_last_run_took(
    client, manager, computed, url, refresh_url, settings
):
    settings.TASKS = DUMMY
    StatsSnapshot.objects.filter(pk=computed.pk).update(
        computed_at=timezone.now() - timedelta(minutes=11), seconds=42.0
    )
    html = client.get(url).content.decode()
    assert "judgments revised since, or the figures are over 10 minutes old" in html
    shown = computed.document["computed_at"]  # the figures on the page are the latest: no reload
    status = client.post(refresh_url, {"shown": shown}, HTTP_HX_REQUEST="true").content.decode()
    assert "the last computation took 42 s" in status


def test_figures_that_turn_stale_while_the_page_reads_them_are_shown_not_recomputed(
    client, manager, computed, url, monkeypatch
):
    """The page decides "current" once: a document that passes STATS_CACHE_SECONDS between
    two reads of the clock must not make a big project recompute inside the request."""
    from labeling.services.metrics import snapshot as snapshot_module
    from labeling.services.metrics import stats as stats_module

    read_at = timezone.now()
    later = read_at + timedelta(seconds=stats_module.STATS_CACHE_SECONDS + 1)
    monkeypatch.setattr(snapshot_module.timezone, "now", lambda: read_at)
    clock = iter([read_at])  # the first reading of the clock in stats; every later one is past the cache time
    monkeypatch.setattr(stats_module.timezone, "now", lambda: next(clock, later))

    def no_recompute(**kwargs):
        raise AssertionError("recomputed inside the request")

    monkeypatch.setattr(stats_module, "snapshot_compute", no_recompute)
    response = client.get(url)
    assert response.status_code == 200
    assert response.context["stats"]["computed_at"] == computed.document["computed_at"]
