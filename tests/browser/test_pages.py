"""Every page as people meet it: the annotate page fits a laptop screen on long conversations,
a manager reaches every tab without typing a URL, and every page (annotator, manager,
errors) passes an axe-core audit with no serious or critical violation.

With UPDATE_SCREENSHOTS set, the pages are also saved under docs/screenshots/.
"""

import random

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, expect

from labeling.models import Item, Membership, Project, Response
from labeling.services.assignment import assignment_next
from labeling.services.judgments import judgment_submit, ranking_from_choice
from tests.browser.helpers import audit, save_screenshot
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

WORDS = (
    "the", "model", "should", "answer", "the", "question", "directly", "and", "say", "when", "it", "does", "not",
    "know", "while", "staying", "polite", "and", "careful", "about", "safety", "so", "a", "long", "reply", "keeps",
    "going", "with", "more", "detail", "examples", "and", "caveats",
)  # fmt: skip
LAPTOPS = ({"width": 1366, "height": 768}, {"width": 1400, "height": 900})


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def long_conversation_project(slug: str = "hh", items: int = 3) -> Project:
    """Items like the longest HH-RLHF conversations: nine turns, then two long answers."""
    rng = random.Random(7)
    project = ProjectFactory(slug=slug, title="HH-RLHF harmless", overlap=1)
    for username, role in (("anna", "annotator"), ("boss", "manager")):
        MembershipFactory(project=project, role=role, user__username=username)
    for n in range(items):
        turns = []
        for _ in range(4):
            turns.append({"role": "user", "content": _text(rng, 30)})
            turns.append({"role": "assistant", "content": "\n\n".join(_text(rng, 60) for _ in range(3))})
        turns.append({"role": "user", "content": "And what if " + _text(rng, 20)})
        item = Item.objects.create(project=project, external_id=f"hh-{n}", prompt=turns, target=1)
        for position in range(2):
            content = "\n\n".join(_text(rng, 70) for _ in range(6))
            Response.objects.create(item=item, position=position, model=f"model-{position}", content=content)
    return project


def log_in(page: Page, live_server, username: str) -> None:
    client = Client()
    client.force_login(UserFactory._meta.model.objects.get(username=username))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])


def in_viewport(page: Page, locator) -> bool:
    box = locator.bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] and box["x"] >= 0


@pytest.mark.parametrize("viewport", LAPTOPS, ids=lambda size: f"{size['width']}x{size['height']}")
def test_the_decision_is_on_screen_before_any_scrolling_on_a_long_conversation(page, live_server, viewport):
    project = long_conversation_project()
    page.set_viewport_size(viewport)
    log_in(page, live_server, "anna")
    page.goto(f"/p/{project.slug}/annotate/")

    for name in ("A is better", "Tie", "B is better", "Slightly", "Clearly", "Much"):
        tile = page.locator(".decision label.tile", has_text=name)
        assert in_viewport(page, tile), name
        assert tile.bounding_box()["height"] >= 44, name
    assert in_viewport(page, page.get_by_role("button", name="Submit"))
    assert in_viewport(page, page.get_by_test_id("response-A")) and in_viewport(page, page.get_by_test_id("response-B"))
    assert page.evaluate("window.scrollY") == 0
    # Each response scrolls on its own; the page does not.
    body = page.get_by_test_id("response-A").locator(".response-body")
    assert body.evaluate("box => box.scrollHeight > box.clientHeight")

    # The conversation shows its last turn; the earlier ones open on demand.
    earlier = page.get_by_test_id("earlier-turns")
    expect(earlier.locator("summary")).to_have_text("Show 8 earlier turns")
    expect(earlier.locator(".turn").first).to_be_hidden()
    earlier.locator("summary").click()
    expect(earlier.locator(".turn").first).to_be_visible()
    expect(earlier.locator(".turn")).to_have_count(8)
    earlier.locator("summary").click()

    # Choosing by keyboard highlights the chosen response, and only it.
    page.keyboard.press("2")
    expect(page.get_by_test_id("response-B").locator(".chosen-mark")).to_be_visible()
    expect(page.get_by_test_id("response-A").locator(".chosen-mark")).to_be_hidden()
    page.keyboard.press("x")
    size = f"{viewport['width']}x{viewport['height']}"
    save_screenshot(page, f"annotate-{size}")
    if viewport["width"] == 1366:
        page.emulate_media(color_scheme="dark")
        save_screenshot(page, "annotate-1366x768-dark")


def test_at_200_percent_zoom_the_page_scrolls_and_the_decision_stays_at_hand(page, live_server):
    """A 1366x768 screen zoomed to 200% is a 683x384 window of CSS pixels: the page scrolls as a
    page, and the decision bar sticks to the bottom edge while the responses pass under it."""
    project = long_conversation_project()
    page.set_viewport_size({"width": 683, "height": 384})
    log_in(page, live_server, "anna")
    page.goto(f"/p/{project.slug}/annotate/")
    page.mouse.wheel(0, 600)
    page.wait_for_timeout(200)

    assert page.evaluate("window.scrollY") > 0
    assert in_viewport(page, page.locator(".decision label.tile", has_text="A is better"))
    page.keyboard.press("1")
    expect(page.locator('input[name="choice"][value="A"]')).to_be_checked()
    page.get_by_test_id("decision").scroll_into_view_if_needed()
    assert in_viewport(page, page.get_by_role("button", name="Submit"))


def test_after_a_submit_the_judgment_just_made_is_one_click_away(page, live_server):
    project = long_conversation_project(items=2)
    log_in(page, live_server, "anna")
    page.goto(f"/p/{project.slug}/annotate/")
    page.keyboard.press("1")
    with page.expect_response(lambda response: response.url.endswith("/judge/")):
        page.keyboard.press("Enter")

    expect(page.get_by_test_id("mine")).to_have_text("1")
    expect(page.get_by_test_id("today")).to_have_text("1")
    page.get_by_test_id("last-judgment").click()

    expect(page.get_by_role("heading", name="Revise your judgment")).to_be_visible()
    expect(page.locator('input[name="choice"][value="A"]')).to_be_checked()


def test_a_manager_reaches_every_tab_and_back_without_typing_a_url(page, live_server):
    project = long_conversation_project()
    log_in(page, live_server, "boss")
    page.goto("/")
    page.get_by_role("link", name="Overview").first.click()
    tabs = page.get_by_role("navigation", name=project.title)
    for name, heading in (
        ("Items", "Items"),
        ("Members", "Members"),
        ("Import", "Import items"),
        ("Export", "Export preferences"),
        ("Settings", "Settings"),
        ("My judgments", f"My judgments in {project.title}"),
        ("Overview", project.title),
        ("Annotate", None),
    ):
        tabs.get_by_role("link", name=name, exact=True).click()
        expect(tabs.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")
        if heading:
            expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
    page.get_by_role("navigation", name="Breadcrumbs").get_by_role("link", name="Projects").click()
    expect(page.get_by_role("heading", level=1, name="Your projects")).to_be_visible()


def test_an_annotator_sees_only_her_own_tabs(page, live_server):
    project = long_conversation_project()
    log_in(page, live_server, "anna")
    page.goto(f"/p/{project.slug}/annotate/")
    tabs = page.get_by_role("navigation", name=project.title).get_by_role("link")
    expect(tabs).to_have_text(["Annotate", "My judgments"])


def _judged_project() -> Project:
    project = long_conversation_project(items=3)
    anna = Membership.objects.get(project=project, user__username="anna").user
    assignment = assignment_next(project=project, annotator=anna)
    judgment_submit(
        assignment_id=assignment.pk, annotator=anna, ranking=ranking_from_choice(assignment=assignment, choice="A")
    )
    ranked = ProjectFactory(slug="ranked", title="Ranked", mode=Project.Mode.RANKING, overlap=1)
    MembershipFactory(project=ranked, user=anna)
    item = Item.objects.create(project=ranked, external_id="r1", prompt=[{"role": "user", "content": "Rank."}])
    for position in range(3):
        Response.objects.create(item=item, position=position, model=f"m{position}", content=f"Answer {position}.")
    return project


AUDITED = {
    "anna": ("/", "/p/hh/annotate/", "/p/hh/history/", "/p/ranked/annotate/", "/tokens/", "/p/hh/settings/", "/nope/"),
    "boss": (
        "/",
        "/p/hh/",
        "/p/hh/items/",
        "/p/hh/members/",
        "/p/hh/import/",
        "/p/hh/export/",
        "/p/hh/settings/",
        "/p/hh/annotate/",
    ),
}


@pytest.mark.parametrize("scheme", ("light", "dark"))
def test_every_page_passes_an_axe_audit(page, live_server, scheme):
    _judged_project()
    page.emulate_media(color_scheme=scheme)
    found = []
    page.goto("/login/")
    found += audit(page)
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):  # the lockout page (429)
        page.goto("/login/")
        page.get_by_label("Username").fill("anna")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("error-page")).to_contain_text("Too many failed log-ins")
    found += audit(page)
    for username, paths in AUDITED.items():
        page.context.clear_cookies()
        log_in(page, live_server, username)
        for path in paths:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            found += audit(page)
            if scheme == "light" and username == "boss":
                save_screenshot(page, "manager-" + (path.strip("/").replace("/", "-") or "home"))
    history = page.get_by_role("link", name="My judgments")
    page.goto("/p/hh/history/")
    if history.count():
        found += audit(page)
    assert not found, "\n".join(found)
