"""The manager's dashboard in Chromium: what a manager sees after a day of labeling."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.factories import PASSWORD, ItemFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.browser


def seeded_project():
    """Three annotators judged eight items each: two prefer model-a, one always picks the left side."""
    project = ProjectFactory(slug="dash", title="Dashboard demo", overlap=3)
    MembershipFactory(project=project, role="manager", user__username="manny")
    ItemFactory.create_batch(8, project=project)
    for name in ("ada", "bob", "lefty"):
        annotator = MembershipFactory(project=project, user__username=name).user
        while (assignment := assignment_next(project=project, annotator=annotator)) is not None:
            models = {response.pk: response.model for response in assignment.item.responses.all()}
            left_is_a = models[assignment.shown_order[0]] == "model-a"
            choice = "A" if name == "lefty" or left_is_a else "B"
            ranking = ranking_from_choice(assignment=assignment, choice=choice)
            judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=ranking, strength=2)
    return project


def log_in(page: Page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator(".topbar .who")).to_have_text(username)


def test_manager_sees_the_leaderboard_and_the_annotator_table(page: Page, db, tmp_path):
    project = seeded_project()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(page, "manny")

    page.goto(f"/p/{project.slug}/")

    expect(page.get_by_role("heading", name="Dashboard demo")).to_be_visible()
    leaderboard = page.locator("#leaderboard-table tbody tr")
    expect(leaderboard).to_have_count(2)
    expect(leaderboard.first.locator("td").nth(1)).to_have_text("model-a")
    expect(page.get_by_role("img", name="Bradley-Terry scores with 95% bootstrap intervals")).to_be_visible()
    annotators = page.locator("#annotator-table tbody tr")
    expect(annotators).to_have_count(3)
    expect(annotators.filter(has_text="lefty")).to_contain_text("100%")
    expect(page.locator("#agreement-table")).to_contain_text("Krippendorff")
    expect(page.locator("#win-rate-table")).to_be_visible()
    # The stylesheet loaded under the Content-Security-Policy: the plots have their colours.
    bar_fill = page.locator(".progress-bar .fill").evaluate("element => getComputedStyle(element).fill")
    assert bar_fill not in ("", "rgb(0, 0, 0)")
    assert errors == []
    page.screenshot(path=str(Path(os.environ.get("DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))), full_page=True)


def test_annotator_cannot_open_the_dashboard(page: Page, db):
    project = seeded_project()
    log_in(page, "ada")

    response = page.goto(f"/p/{project.slug}/")

    assert response.status == 403
    expect(page.get_by_test_id("error-page")).to_contain_text("Only the project's managers may do this.")
    page.get_by_role("link", name="Back to your projects").click()
    expect(page).to_have_url(re.compile(r"/$"))


def test_a_big_projects_page_shows_the_stored_figures_then_reloads_with_new_ones(page: Page, db, settings):
    """Above the inline limit (set to 0 here) the page never computes: htmx asks for the
    refresh on load, then reloads itself when the new figures are in."""
    settings.LABELING_STATS_INLINE_JUDGMENTS = 0
    project = seeded_project()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    log_in(page, "manny")

    page.goto(f"/p/{project.slug}/")

    # First view: nothing stored yet; the refresh (inline backend) runs and the page reloads.
    expect(page.locator("#leaderboard-table tbody tr")).to_have_count(2)
    expect(page.get_by_role("heading", name="Computing…")).to_have_count(0)
    expect(page.locator("#stale-note")).to_have_count(0)
    extra = ItemFactory(project=project)
    annotator = MembershipFactory(project=project, user__username="late").user
    assignment = assignment_next(project=project, annotator=annotator)
    assert assignment.item_id == extra.pk
    judgment_submit(
        assignment_id=assignment.pk, annotator=annotator, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )

    page.goto(f"/p/{project.slug}/")

    # Out of date: the stored figures with a note, then the refreshed ones without it.
    expect(page.locator("#annotator-table tbody tr")).to_have_count(4)
    expect(page.locator("#stale-note")).to_have_count(0)
    assert errors == []
