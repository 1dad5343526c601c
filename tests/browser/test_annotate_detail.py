"""The annotate page in detail, keyboard first: strength, rationale, rankings with ties,
skips with reasons, revisions, conversations, differences, and the README screenshot."""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import Page, expect

from labeling.models import Assignment, Item, Judgment, JudgmentRevision, Project
from labeling.services.assignment import assignment_next
from labeling.services.importing import items_import
from labeling.services.judgments import judgment_submit
from tests.browser.test_annotate import log_in_by_keyboard, make_project, progress_shows, shown_ids

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
README_SCREENSHOT = ROOT / "docs" / "annotate-pairwise.png"
DEMO_ITEMS = ROOT / "labeling" / "demo" / "demo_items.jsonl"
FOUR_ANSWERS = ["Paris.", "It is Paris, on the Seine.", "Lyon.", "I am not sure."]


def log_in(page: Page, live_server, project: Project, username: str = "anna") -> None:
    """Log in through a session cookie: the keyboard login is covered in test_annotate.py
    (and once below), and skipping its round trips keeps this file fast."""
    client = Client()
    client.force_login(project.memberships.get(user__username=username).user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])


def open_annotate(page: Page, live_server, project: Project) -> None:
    log_in(page, live_server, project)
    page.goto(f"/p/{project.slug}/annotate/")
    progress_shows(page, 0)


def count_posts(page: Page) -> list[str]:
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    return posts


def send_by_enter(page: Page) -> int:
    """Press Enter and wait for the server's answer. The page shows the item leased
    ahead at once, before the judgment is stored, so the screen alone cannot tell."""
    with page.expect_response(lambda response: response.url.endswith("/judge/")) as answer:
        page.keyboard.press("Enter")
    return answer.value.status


def shot(page: Page, name: str, *, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


# ---- pairwise ------------------------------------------------------------------------------


def test_pairwise_judgment_with_strength_both_bad_and_rationale_by_keyboard(page, live_server):
    project = make_project("solo", items=2)
    log_in_by_keyboard(page)
    page.goto(f"/p/{project.slug}/annotate/")
    progress_shows(page, 0)
    left, right = shown_ids(page)

    page.keyboard.press("2")
    page.keyboard.press("x")
    page.keyboard.press("n")
    page.keyboard.press("r")
    expect(page.locator('#item textarea[name="rationale"]')).to_be_focused()
    page.keyboard.type("B answers the question; A rambles.")
    page.keyboard.press("Escape")
    expect(page.locator('#item textarea[name="rationale"]')).not_to_be_focused()
    # What the annotator sees before sending: B, clearly, both bad, the rationale.
    expect(page.locator('#item input[name="choice"][value="B"]')).to_be_checked()
    expect(page.locator('#item input[name="strength"][value="2"]')).to_be_checked()
    expect(page.locator('#item input[name="both_bad"]')).to_be_checked()
    assert send_by_enter(page) == 200

    progress_shows(page, 1)
    assert shown_ids(page) != (left, right)
    judgment = Judgment.objects.get()
    assert judgment.ranking == [[right], [left]]
    assert judgment.strength == 2
    assert judgment.both_bad is True
    assert judgment.rationale == "B answers the question; A rambles."
    assert judgment.visible_seconds is not None and judgment.visible_seconds > 0
    # The next item starts clean.
    expect(page.locator('#item input[name="both_bad"]')).not_to_be_checked()
    expect(page.locator('#item textarea[name="rationale"]')).to_have_value("")


def test_question_mark_opens_the_shortcuts_and_escape_closes_them(page, live_server):
    project = make_project("solo", items=1)
    open_annotate(page, live_server, project)
    dialog = page.get_by_test_id("shortcuts")
    expect(dialog).to_be_hidden()

    page.keyboard.press("?")

    expect(dialog).to_be_visible()
    for key in ["1", "2", "3", "Z", "X", "C", "D", "N", "R", "S", "G", "Enter", "Esc", "="]:
        expect(dialog.locator("kbd", has_text=re.compile(rf"^{re.escape(key)}$")).first).to_be_visible()
    expect(dialog).to_contain_text("Tie it with the one above")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # The page's own keys work again.
    page.keyboard.press("1")
    expect(page.locator('#item input[name="choice"][value="A"]')).to_be_checked()


def test_required_rationale_left_empty_is_refused_in_the_browser_and_by_the_server(page, live_server):
    project = make_project("solo", items=2)
    Project.objects.filter(pk=project.pk).update(rationale_required=True)
    open_annotate(page, live_server, project)
    rationale = page.locator('#item textarea[name="rationale"]')
    shown = page.locator("#item").get_attribute("data-assignment")
    expect(page.locator("#item label.rationale")).to_contain_text("(required)")
    posts = count_posts(page)

    page.keyboard.press("1")
    page.keyboard.press("Enter")

    # The browser refuses first: the empty required textarea takes focus and says why.
    expect(rationale).to_be_focused()
    assert rationale.evaluate("el => el.validity.valueMissing")
    assert rationale.evaluate("el => el.validationMessage")
    page.wait_for_timeout(200)  # give a stray request time to show up
    assert posts == []

    # Without the attribute (an old page, a hand-made request) the server refuses too.
    rationale.evaluate("el => el.removeAttribute('required')")
    page.keyboard.press("Escape")
    assert send_by_enter(page) == 422

    expect(page.get_by_test_id("error")).to_contain_text("This project asks for a rationale")
    assert len(posts) == 1
    assert not Judgment.objects.exists()
    assert Assignment.objects.get(pk=shown).state == Assignment.State.ACTIVE
    # The answer given so far is kept on the page, and the attribute is back.
    expect(page.locator('#item input[name="choice"][value="A"]')).to_be_checked()
    expect(rationale).to_have_attribute("required", "")


def test_show_differences_marks_the_changed_words_and_hides_them_again(page, live_server):
    project = make_project(
        "solo",
        items=1,
        responses=["The capital of France is Paris.", "The capital of France is Lyon, I think."],
    )
    open_annotate(page, live_server, project)
    toggle = page.get_by_role("button", name=re.compile("Show differences"))
    left, right = page.get_by_test_id("response-A"), page.get_by_test_id("response-B")
    expect(page.locator("#item mark").first).to_be_hidden()

    page.keyboard.press("d")

    expect(toggle).to_have_attribute("aria-pressed", "true")
    # Left shows what it has that the right lacks (deleted), the right what it adds.
    expect(left.locator("mark.diff-del").first).to_be_visible()
    expect(right.locator("mark.diff-ins").first).to_be_visible()
    expect(left.locator("mark.diff-ins")).to_have_count(0)
    expect(right.locator("mark.diff-del")).to_have_count(0)
    marked = {side: " ".join(box.locator("mark").all_inner_texts()) for side, box in (("A", left), ("B", right))}
    paris = "A" if "Paris" in left.locator(".diffview").inner_text() else "B"
    lyon = "B" if paris == "A" else "A"
    assert marked[paris] == "Paris"
    assert marked[lyon] == "Lyon, I think"  # the shared words are not marked
    expect(left.locator(".rendered")).to_be_hidden()
    expect(left.locator(".diffview")).to_contain_text("The capital of France is")

    page.keyboard.press("d")

    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(left.locator("mark").first).to_be_hidden()
    expect(right.locator("mark").first).to_be_hidden()
    expect(left.locator(".rendered")).to_be_visible()
    expect(right.locator(".rendered")).to_be_visible()


# ---- rankings ------------------------------------------------------------------------------


def make_ranking_project(items: int = 2) -> Project:
    project = make_project("ranked", items=items, responses=FOUR_ANSWERS)
    Project.objects.filter(pk=project.pk).update(mode=Project.Mode.RANKING)
    project.refresh_from_db()
    return project


def ranking_on_screen(page: Page) -> list[list[int]]:
    """The ranking the list shows: its order, with a `tied` item joining the group above."""
    rows = page.locator("#item li.rank-item").evaluate_all(
        "items => items.map(li => [Number(li.dataset.responseId), li.classList.contains('tied')])"
    )
    groups: list[list[int]] = []
    for response_id, tied in rows:
        if tied and groups:
            groups[-1].append(response_id)
        else:
            groups.append([response_id])
    return [sorted(group) for group in groups]


def labels_on_screen(page: Page) -> list[str]:
    return page.locator("#item li.rank-item").evaluate_all("items => items.map(li => li.dataset.label)")


def test_four_way_ranking_with_a_tie_by_keyboard(page, live_server):
    project = make_ranking_project()
    open_annotate(page, live_server, project)
    status = page.get_by_test_id("ranking-status")
    expect(status).to_have_attribute("aria-live", "polite")
    assert labels_on_screen(page) == ["A", "B", "C", "D"]

    page.keyboard.press("3")
    expect(status).to_have_text("Selected response C.")
    expect(page.get_by_test_id("response-C")).to_have_attribute("aria-current", "true")
    page.keyboard.press("ArrowUp")
    expect(status).to_have_text("Response C is now rank 2.")
    page.keyboard.press("ArrowUp")
    expect(status).to_have_text("Response C is now rank 1.")
    page.keyboard.press("4")
    page.keyboard.press("ArrowUp")
    expect(status).to_have_text("Response D is now rank 3.")
    page.keyboard.press("=")
    expect(status).to_have_text("Response D is now rank 2, tied with the one above.")
    page.keyboard.press("b")
    page.keyboard.press("j")  # J moves down, like ArrowDown: B is already last
    expect(status).to_have_text("Response B is now rank 4.")

    assert labels_on_screen(page) == ["C", "A", "D", "B"]
    ranks = page.locator("#item .rank-input").evaluate_all("inputs => inputs.map(i => i.value)")
    assert ranks == ["1", "2", "2", "4"]
    expected = ranking_on_screen(page)
    ids = {label: int(page.get_by_test_id(f"response-{label}").get_attribute("data-response-id")) for label in "ABCD"}
    assert expected == [[ids["C"]], sorted([ids["A"], ids["D"]]), [ids["B"]]]
    shot(page, "annotate-ranking.png")

    assert send_by_enter(page) == 200

    progress_shows(page, 1)
    assert Judgment.objects.get().ranking == expected


def test_four_way_ranking_by_drag_and_drop(page, live_server):
    project = make_ranking_project()
    open_annotate(page, live_server, project)
    item = page.locator("#item li.rank-item")

    # D to the top, then A below B: drop on the upper half of a target lands above it,
    # on the lower half below it.
    page.get_by_test_id("response-D").drag_to(page.get_by_test_id("response-A"), target_position={"x": 40, "y": 5})
    expect(page.get_by_test_id("ranking-status")).to_have_text("Response D is now rank 1.")
    box = page.get_by_test_id("response-B").bounding_box()
    page.get_by_test_id("response-A").drag_to(
        page.get_by_test_id("response-B"), target_position={"x": 40, "y": box["height"] - 5}
    )
    expect(page.get_by_test_id("ranking-status")).to_have_text("Response A is now rank 3.")
    assert labels_on_screen(page) == ["D", "B", "A", "C"]
    ranks = item.locator(".rank-input").evaluate_all("inputs => inputs.map(i => i.value)")
    assert ranks == ["1", "2", "3", "4"]
    order = [int(pk) for pk in item.evaluate_all("items => items.map(li => li.dataset.responseId)")]

    assert send_by_enter(page) == 200

    progress_shows(page, 1)
    assert Judgment.objects.get().ranking == [[pk] for pk in order]


def test_enter_on_an_untouched_ranking_says_what_to_do_and_the_shortcuts_keep_working(page, live_server):
    project = make_ranking_project()
    open_annotate(page, live_server, project)
    posts = count_posts(page)

    page.keyboard.press("Enter")

    # Nothing sent, a message says what to do, and no rank box took the focus (and the keys).
    expect(page.get_by_test_id("ranking-status")).to_contain_text("Put the responses in order first")
    expect(page.locator("#item .rank-input:focus")).to_have_count(0)
    page.wait_for_timeout(200)
    assert posts == []
    progress_shows(page, 0)
    assert not Judgment.objects.exists()
    page.keyboard.press("b")
    page.keyboard.press("ArrowUp")
    expect(page.get_by_test_id("ranking-status")).to_contain_text("Response B is now rank 1")
    expect(page.locator("#item li.rank-item").first).to_have_attribute("data-label", "B")


def test_reopened_ranking_lists_the_stored_order_and_a_move_and_back_keeps_it(page, live_server):
    project = make_ranking_project(items=1)
    annotator = project.memberships.get().user
    assignment = assignment_next(project=project, annotator=annotator)
    a, b, c, d = assignment.shown_order
    stored = [[d], sorted([b, c]), [a]]
    judgment, _ = judgment_submit(assignment_id=assignment.pk, annotator=annotator, ranking=stored)
    log_in(page, live_server, project)
    page.goto(f"/p/{project.slug}/judgments/{judgment.pk}/")

    listed = ranking_on_screen(page)
    # Select the response listed first (keys pick responses by their letter), move it down and back.
    first_label = labels_on_screen(page)[0]
    page.keyboard.press(str("ABCDEFGH".index(first_label) + 1))
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    with page.expect_navigation():
        page.keyboard.press("Enter")

    judgment.refresh_from_db()
    assert judgment.ranking == stored, "moving a response and back changed the saved ranking"
    assert listed == stored


# ---- skip, revise, conversations -----------------------------------------------------------


def test_skip_with_a_reason_from_the_projects_list_by_keyboard(page, live_server):
    project = make_project("solo", items=2)
    Project.objects.filter(pk=project.pk).update(skip_reasons=["Off-topic", "Cannot judge: needs expertise"])
    open_annotate(page, live_server, project)
    first = shown_ids(page)
    reason = page.get_by_test_id("skip-reason")

    page.keyboard.press("s")
    expect(reason).to_be_focused()
    expect(reason).to_have_value("")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(reason).to_have_value("Cannot judge: needs expertise")
    page.keyboard.press("Escape")  # leave the list, then S sends the skip
    page.keyboard.press("s")

    expect(page.get_by_test_id("response-A")).not_to_have_attribute("data-response-id", str(first[0]))
    progress_shows(page, 0)
    skipped = Assignment.objects.get(state=Assignment.State.SKIPPED)
    assert skipped.skip_reason == "Cannot judge: needs expertise"
    assert set(skipped.shown_order) == set(first)
    assert not Judgment.objects.exists()
    expect(page.get_by_test_id("skip-reason")).to_have_value("")


def test_skip_button_without_a_reason_is_held_back_by_the_browser(page, live_server):
    project = make_project("solo", items=2)
    Project.objects.filter(pk=project.pk).update(skip_reasons=["Off-topic"])
    open_annotate(page, live_server, project)
    posts = count_posts(page)

    page.get_by_role("button", name="Skip this item").click()

    expect(page.get_by_test_id("skip-reason")).to_be_focused()
    page.wait_for_timeout(200)
    assert posts == []
    page.get_by_test_id("skip-reason").select_option("Off-topic")
    page.get_by_role("button", name="Skip this item").click()
    progress_shows(page, 0)
    expect(page.get_by_test_id("skip-reason")).to_have_value("")
    assert Assignment.objects.get(state=Assignment.State.SKIPPED).skip_reason == "Off-topic"


def test_reopen_and_revise_a_past_judgment_keeps_both_versions(page, live_server):
    project = make_project("solo", items=2)
    open_annotate(page, live_server, project)
    left, right = shown_ids(page)
    page.keyboard.press("1")
    page.keyboard.press("z")
    assert send_by_enter(page) == 200
    progress_shows(page, 1)
    judgment = Judgment.objects.get()
    assert judgment.ranking == [[left], [right]] and judgment.strength == 1

    page.get_by_role("link", name="My judgments").click()
    history = page.get_by_test_id("history")
    row = history.locator("tbody tr", has_text=judgment.item.external_id)
    expect(row.get_by_test_id("answer")).to_have_text("A over B, slightly")  # as shown: A on the left
    expect(row.locator("td").nth(4)).to_have_text("1")
    row.get_by_role("link", name="Reopen").click()

    expect(page.get_by_role("heading", name="Revise your judgment")).to_be_visible()
    # The form shows the stored answer, on the same sides as when it was judged.
    assert shown_ids(page) == (left, right)
    expect(page.locator('input[name="choice"][value="A"]')).to_be_checked()
    expect(page.locator('input[name="strength"][value="1"]')).to_be_checked()
    page.keyboard.press("2")
    page.keyboard.press("c")
    page.keyboard.press("r")
    page.keyboard.type("On a second read, B is right.")
    page.keyboard.press("Control+Enter")

    expect(page).to_have_url(re.compile(rf"/p/{project.slug}/history/$"))
    saved = f"Saved: version 2 of your judgment on {judgment.item.external_id}"
    expect(page.locator(".messages")).to_contain_text(saved)
    revised = history.locator("tbody tr", has_text=judgment.item.external_id)
    expect(revised.get_by_test_id("answer")).to_have_text("B over A, much")
    expect(revised.locator("td").nth(4)).to_have_text("2")
    judgment.refresh_from_db()
    assert judgment.revision == 2
    assert judgment.ranking == [[right], [left]] and judgment.strength == 3
    assert judgment.rationale == "On a second read, B is right."
    old = JudgmentRevision.objects.get(judgment=judgment)
    assert (old.revision, old.ranking, old.strength, old.rationale) == (1, [[left], [right]], 1, "")
    assert Item.objects.get(pk=judgment.item_id).votes == 1


def test_conversation_prompt_is_shown_as_a_transcript_in_order(page, live_server):
    conversation = [
        {"role": "system", "content": "You are a terse assistant for Python questions."},
        {"role": "user", "content": "How do I reverse a list?"},
        {"role": "assistant", "content": "Use `items[::-1]` or `items.reverse()`."},
        {"role": "user", "content": "Which one changes the list **in place**?"},
    ]
    project = make_project(
        "chat",
        items=1,
        prompt=conversation,
        responses=["`items.reverse()` changes it in place and returns `None`.", "Both do."],
    )
    open_annotate(page, live_server, project)
    prompt = page.get_by_test_id("prompt")

    turns = prompt.locator("[data-testid^=turn-]")
    expect(turns).to_have_count(4)
    assert turns.evaluate_all("turns => turns.map(t => t.dataset.testid)") == [
        "turn-system",
        "turn-user",
        "turn-assistant",
        "turn-user",
    ]
    expect(prompt.get_by_test_id("turn-system")).to_contain_text("terse assistant")
    expect(prompt.get_by_test_id("turn-user")).to_have_count(2)
    expect(prompt.get_by_test_id("turn-user").nth(1)).to_contain_text("Which one changes the list in place?")
    expect(prompt.get_by_test_id("turn-user").nth(1).locator("strong")).to_have_text("in place")
    expect(prompt.get_by_test_id("turn-assistant").locator("code")).to_have_text(["items[::-1]", "items.reverse()"])
    shot(page, "annotate-conversation.png")


# ---- the README screenshot -----------------------------------------------------------------


def test_readme_screenshot_of_a_realistic_pairwise_judgment(page, live_server):
    project = make_project("demo", items=0)
    Project.objects.filter(pk=project.pk).update(title="Assistant answers: which is better?")
    project.refresh_from_db()
    report = items_import(project=project, path=DEMO_ITEMS)
    assert report.imported == 32
    page.set_viewport_size({"width": 1280, "height": 800})
    open_annotate(page, live_server, project)
    expect(page.get_by_test_id("prompt")).to_contain_text("remove duplicates from a list in Python")
    expect(page.locator("#item pre code").first).to_be_visible()

    # The annotator prefers the answer that keeps the order (dict.fromkeys).
    side = "A" if "dict.fromkeys" in page.get_by_test_id("response-A").inner_text() else "B"
    page.keyboard.press("1" if side == "A" else "2")
    page.keyboard.press("c")
    page.keyboard.press("r")
    page.keyboard.type("The other answer claims a set keeps the order; it does not.")
    page.keyboard.press("Escape")
    page.evaluate("window.scrollTo(0, 0)")
    # The whole page, 1280 wide: the prompt, both answers and the answer given.
    path = shot(page, "annotate-pairwise.png", full_page=True)
    assert path.stat().st_size < 300_000
    if os.environ.get("UPDATE_SCREENSHOTS"):  # refresh README's picture only when asked: a test run leaves git clean
        shutil.copyfile(path, README_SCREENSHOT)

    assert send_by_enter(page) == 200
    progress_shows(page, 1)
    judgment = Judgment.objects.get()
    assert judgment.item.external_id == "demo-001"
    preferred = judgment.item.responses.get(pk=judgment.ranking[0][0])
    assert "dict.fromkeys" in preferred.content and judgment.strength == 3
