"""The Items page as a manager uses it: find an item in the table, open its row, read who judged
what in A/B letters, mark a gold answer as "B" and see it as B, all without leaving the page."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from labeling.models import Item, Project, Response
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.browser.helpers import audit, log_in
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def make_project() -> Project:
    """60 two-response items (two pages at 50 a page); anna judged the first, preferring its second response."""
    project = ProjectFactory(slug="gold", title="Gold answers", overlap=1)
    MembershipFactory(project=project, role="manager", user__username="boss")
    anna = MembershipFactory(project=project, role="annotator", user__username="anna").user
    ItemFactory(
        project=project,
        external_id="q-first",
        prompt=[
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "What is **2 + 2**?"},
        ],
        responses=["It is 5.", "It is **4**."],
    )
    ItemFactory.create_batch(59, project=project)
    assignment = assignment_next(project=project, annotator=anna)
    left = Response.objects.get(pk=assignment.shown_order[0])
    choice = "B" if left.position == 0 else "A"  # whichever side it was shown on, anna picks position 1
    judgment_submit(
        assignment_id=assignment.pk, annotator=anna, ranking=ranking_from_choice(assignment=assignment, choice=choice)
    )
    return project


def test_a_manager_marks_a_gold_answer_as_b_and_sees_it_as_b(page, live_server):
    project = make_project()
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, "boss")
    page.get_by_role("link", name="Overview").click()
    page.get_by_role("navigation", name="Gold answers").get_by_role("link", name="Items").click()

    # A compact table: 50 rows a page, the prompt's last user turn as plain text.
    expect(page.get_by_test_id("item-count")).to_contain_text("60 items")
    expect(page.locator("tbody.item-group")).to_have_count(50)
    row = page.get_by_test_id("item-q-first")
    expect(row.get_by_test_id("excerpt")).to_have_text("What is 2 + 2?")
    expect(row.get_by_test_id("majority")).to_contain_text("B over A")
    expect(row.get_by_test_id("gold")).to_have_text("")

    # The row opens in place: the prompt, responses lettered in their listed order, who judged what.
    detail = page.get_by_test_id("detail-q-first")
    expect(detail).to_be_hidden()
    row.get_by_test_id("open-q-first").click()
    expect(detail).to_be_visible()
    expect(detail).to_contain_text("A = the first response listed here")
    expect(detail.get_by_test_id("response-A")).to_contain_text("It is 5.")
    expect(detail.get_by_test_id("response-B")).to_contain_text("It is 4.")
    expect(detail.get_by_test_id("judgments")).to_contain_text("anna")
    expect(detail.get_by_test_id("judgments")).to_contain_text("B over A")
    assert page.url.endswith("/p/gold/items/")  # never left the page
    found = audit(page)
    page.emulate_media(color_scheme="dark")
    found += audit(page)
    page.emulate_media(color_scheme="light")
    assert not found, "\n".join(found)

    # Gold answer "B", with the keyboard: focus A, arrow to B, submit.
    gold_form = detail.get_by_test_id("gold-form")
    gold_form.get_by_label("A", exact=True).focus()
    page.keyboard.press("ArrowRight")
    expect(gold_form.get_by_label("B", exact=True)).to_be_checked()
    gold_form.get_by_role("button", name="Mark gold").click()
    expect(detail.get_by_role("status")).to_have_text("q-first: marked gold.")
    expect(row.get_by_test_id("gold")).to_have_text("B over A")
    expect(detail.get_by_label("B", exact=True)).to_be_checked()
    item = Item.objects.get(project=project, external_id="q-first")
    expect(gold_form.get_by_role("button", name="Update gold answer")).to_be_focused()  # the row was redrawn
    assert item.is_gold and item.gold_answer == [[1], [0]]
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "manager-items-open.png"))

    # Still B after a reload, in the table and in the form; the gold filter finds it.
    page.reload()
    expect(page.get_by_test_id("item-q-first").get_by_test_id("gold")).to_have_text("B over A")
    page.get_by_label("Show").select_option("gold")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody.item-group")).to_have_count(1)
    page.get_by_test_id("open-q-first").click()
    expect(page.get_by_test_id("detail-q-first").get_by_label("B", exact=True)).to_be_checked()


def test_sorting_and_paging_keep_each_other(page, live_server):
    make_project()
    log_in(page, "boss")
    page.goto("/p/gold/items/")
    page.get_by_test_id("sort-votes").click()
    expect(page).to_have_url(re.compile(r"/p/gold/items/\?sort=-votes$"))
    expect(page.locator("tbody.item-group").first).to_have_attribute("data-testid", "item-q-first")
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Votes")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("tbody.item-group")).to_have_count(10)
    expect(page).to_have_url(re.compile(r"/p/gold/items/\?sort=-votes&page=2$"))
