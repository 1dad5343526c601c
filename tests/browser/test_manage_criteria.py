"""Criteria as a manager edits them: rows of a form, not JSON. A bad key is shown beside its row;
a saved criterion is listed and asked on the annotate page; the page passes an axe-core audit."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, expect

from labeling.models import Project
from tests.browser.helpers import audit
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HELPFUL = {"key": "helpful", "label": "Helpful", "type": "likert", "per_response": True, "required": False}


def log_in(page: Page, live_server, username: str) -> None:
    page.context.clear_cookies()
    client = Client()
    client.force_login(UserFactory._meta.model.objects.get(username=username))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])


def test_a_manager_adds_a_criterion_in_the_rows_and_the_annotator_is_asked_it(page, live_server):
    project = ProjectFactory(slug="crit", title="Criteria", overlap=1, license="cc-by-4.0", criteria=[HELPFUL])
    MembershipFactory(project=project, role="manager", user__username="boss")
    MembershipFactory(project=project, role="annotator", user__username="anna")
    ItemFactory.create_batch(2, project=project)
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, live_server, "boss")
    page.goto("/p/crit/settings/")
    criteria = page.get_by_test_id("criteria")
    rows = criteria.get_by_test_id("criterion-row")
    expect(rows).to_have_count(2)  # the saved one and an empty row
    expect(rows.first.get_by_label("Key")).to_have_value("helpful")

    # "Add a criterion" adds a row and puts the cursor in its key; a bad key is refused beside its row.
    criteria.get_by_role("button", name="Add a criterion").click()
    expect(rows).to_have_count(3)
    added = rows.nth(2)
    expect(added.get_by_label("Key")).to_be_focused()
    page.keyboard.type("Honest!")
    added.get_by_label("Label").fill("Is it honest?")
    added.get_by_label("Type").select_option(label="Yes / no")
    added.get_by_label("Per response").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_test_id("form-error")).to_contain_text("Check the criteria")
    bad = rows.filter(has_text="Key must be lowercase")
    expect(bad).to_have_count(1)
    expect(bad.get_by_label("Key")).to_have_value("Honest!")
    expect(bad.get_by_label("Key")).to_have_attribute("aria-invalid", "true")
    assert Project.objects.get(slug="crit").criteria == [HELPFUL]
    assert not audit(page)

    # Fixed and saved: listed as a row, stored as the criteria service keeps it.
    bad.get_by_label("Key").fill("honest")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator(".messages")).to_contain_text("Settings saved.")
    expect(rows).to_have_count(3)
    expect(rows.nth(1).get_by_label("Key")).to_have_value("honest")
    expect(rows.nth(1).get_by_label("Label")).to_have_value("Is it honest?")
    expect(rows.nth(1).get_by_label("Per response")).not_to_be_checked()
    honest = {"key": "honest", "label": "Is it honest?", "type": "flag", "per_response": False, "required": False}
    assert Project.objects.get(slug="crit").criteria == [HELPFUL, honest]
    page.reload()  # audited without the flash message (the shell's message list is audited elsewhere)
    assert not audit(page)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        criteria.screenshot(path=str(SCREENSHOTS / "manager-settings-criteria.png"))

    # The annotator is asked the new question, once per item.
    log_in(page, live_server, "anna")
    page.goto("/p/crit/annotate/")
    question = page.locator('.item-criteria [data-criterion="honest"]')
    expect(question).to_be_visible()
    expect(question.get_by_label("Is it honest?")).to_be_visible()
    expect(page.locator('.response [data-criterion="helpful"]')).to_have_count(2)  # per response


def test_without_javascript_the_empty_row_adds_a_criterion_to_a_new_project(browser, live_server):
    from django.contrib.auth.models import Permission

    UserFactory(username="boss").user_permissions.add(Permission.objects.get(codename="add_project"))
    context = browser.new_context(java_script_enabled=False, base_url=live_server.url)
    page = context.new_page()
    log_in(page, live_server, "boss")
    page.goto("/projects/new/")
    expect(page.get_by_role("button", name="Add a criterion")).to_have_count(0)  # a JavaScript convenience
    page.get_by_label("Slug").fill("nojs")
    page.get_by_label("Title").fill("Without JavaScript")
    page.get_by_label("Export license").fill("cc-by-4.0")
    row = page.get_by_test_id("criterion-row")
    expect(row).to_have_count(1)
    row.get_by_label("Key").fill("clear")
    row.get_by_label("Type").select_option(label="Yes / no")
    row.get_by_label("Required").check()
    page.get_by_role("button", name="Create project").click()
    expect(page.locator(".messages")).to_contain_text("created")
    assert Project.objects.get(slug="nojs").criteria == [
        {"key": "clear", "label": "Clear", "type": "flag", "per_response": True, "required": True}
    ]
    context.close()
