"""The annotate page as an annotator uses it: keyboard only, htmx swaps, safe rendering."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from labeling.models import Assignment, Judgment, Response
from labeling.services.exporting import ExportOptions, preferences_export
from tests.factories import PASSWORD, ItemFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
COLUMNS = ["prompt", "chosen", "rejected", "item_id", "chosen_model", "rejected_model", "votes", "agreement"]


def make_project(slug: str, *, items: int, **item_kwargs):
    """A project with overlap 1, `items` items and one annotator, "anna"."""
    project = ProjectFactory(slug=slug, overlap=1)
    MembershipFactory(project=project, role="annotator", user__username="anna")
    ItemFactory.create_batch(items, project=project, **item_kwargs)
    return project


def log_in_by_keyboard(page: Page, username: str = "anna") -> None:
    page.goto("/login/")
    page.get_by_label("Username").focus()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator(".topbar .who")).to_have_text(username)


def progress_shows(page: Page, count: int) -> None:
    expect(page.get_by_test_id("progress")).to_contain_text(re.compile(rf"You judged {count}\b"))


def shown_ids(page: Page) -> tuple[int, int]:
    """The response ids on the left (A) and on the right (B)."""
    left = page.get_by_test_id("response-A").get_attribute("data-response-id")
    right = page.get_by_test_id("response-B").get_attribute("data-response-id")
    return int(left), int(right)


def judge(page: Page, key: str, expected_choice: str, judged_before: int) -> None:
    """Press one choice key, check it took, press Enter and wait for the next item."""
    page.keyboard.press(key)
    expect(page.locator(f'#item input[name="choice"][value="{expected_choice}"]')).to_be_checked()
    # The next item shows at once; the judgment is stored behind it: wait for the answer.
    with page.expect_response(lambda response: response.url.endswith("/judge/")) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    progress_shows(page, judged_before + 1)


def content(pk: int) -> str:
    return Response.objects.get(pk=pk).content


def export_train(project, out: Path):
    import datasets

    report = preferences_export(project=project, out_dir=out, options=ExportOptions(aggregate="majority"))
    return report, datasets.load_from_disk(str(out))["train"]


def test_annotator_judges_three_items_by_keyboard_and_export_holds_them(page, live_server, tmp_path):
    project = make_project("solo", items=4)
    log_in_by_keyboard(page)
    page.goto(f"/p/{project.slug}/annotate/")
    progress_shows(page, 0)
    expect(page.get_by_test_id("response-A")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "annotate-pairwise.png"), full_page=True)
    page.evaluate("window.__marker = 1")

    expected = {}  # external id -> (content preferred, content not preferred)
    seen = []
    # The annotator always prefers the first imported answer, wherever it is shown:
    # the export must follow what they preferred, not the side it was on.
    for judged, (left_key, right_key) in enumerate([("1", "b"), ("a", "2"), ("1", "b")]):
        left, right = shown_ids(page)
        assert (left, right) not in seen, "the judged item is still shown"
        seen.append((left, right))
        # What the annotator reads is what gets stored.
        expect(page.get_by_test_id("response-A")).to_contain_text(content(left))
        expect(page.get_by_test_id("response-B")).to_contain_text(content(right))
        shown_left = Response.objects.select_related("item").get(pk=left)
        side = "A" if shown_left.position == 0 else "B"
        preferred, other = (left, right) if side == "A" else (right, left)
        expected[shown_left.item.external_id] = (content(preferred), content(other))
        judge(page, left_key if side == "A" else right_key, side, judged)

    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped by htmx"

    _, train = export_train(project, tmp_path / "three")
    assert sorted(train.column_names) == sorted(COLUMNS)
    assert train.num_rows == 3
    assert {row["item_id"]: (row["chosen"], row["rejected"]) for row in train} == {
        item_id: ([{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}])
        for item_id, (chosen, rejected) in expected.items()
    }
    assert all(row["votes"] == 1 and row["agreement"] == 1.0 for row in train)

    # A fourth item, judged a tie: stored, but a tie says nothing about which is better.
    left, _ = shown_ids(page)
    tied_item = Response.objects.get(pk=left).item.external_id
    judge(page, "t", "tie", 3)
    expect(page.get_by_test_id("done")).to_be_visible()
    assert page.evaluate("window.__marker") == 1, "the page was reloaded instead of swapped by htmx"
    assert Judgment.objects.filter(project=project).count() == 4

    report, train = export_train(project, tmp_path / "with-tie")
    assert train.num_rows == 3
    assert tied_item not in train["item_id"]
    assert report.counts.tied == 1


def test_enter_without_a_choice_submits_nothing(page, live_server):
    project = make_project("solo", items=2)
    log_in_by_keyboard(page)
    page.goto(f"/p/{project.slug}/annotate/")
    progress_shows(page, 0)
    before = shown_ids(page)
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    page.keyboard.press("Enter")

    # The browser asks for a choice instead of sending the form.
    expect(page.locator('#item input[name="choice"][value="A"]')).to_be_focused()
    assert page.locator('#item input[name="choice"]:checked').count() == 0
    page.wait_for_timeout(300)  # give a stray request time to show up
    assert posts == []
    progress_shows(page, 0)
    assert shown_ids(page) == before
    assert not Judgment.objects.exists()
    assert Assignment.objects.get(queued=False).state == Assignment.State.ACTIVE


def test_done_message_when_nothing_left(page, live_server):
    project = make_project("solo", items=1)
    log_in_by_keyboard(page)
    page.goto(f"/p/{project.slug}/annotate/")
    expect(page.get_by_test_id("done")).to_be_hidden()

    judge(page, "2", "B", 0)

    expect(page.get_by_test_id("done")).to_contain_text("All done")
    expect(page.locator("form.judge")).to_have_count(0)
    expect(page.get_by_test_id("progress")).to_contain_text("0 of 1 items left")
    page.reload()
    expect(page.get_by_test_id("done")).to_contain_text("All done")
    progress_shows(page, 1)


HOSTILE = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "[click](javascript:window.__xss=1)",
]


def test_hostile_response_shows_as_text_and_runs_nothing(page, live_server):
    hostile = "\n\n".join(HOSTILE)
    project = make_project(
        "solo",
        items=2,
        prompt=[{"role": "user", "content": hostile}],
        responses=[hostile, "A harmless answer."],
    )
    dialogs, csp_reports = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: csp_reports.append(message.text) if "Security Policy" in message.text else None)
    log_in_by_keyboard(page)
    page.goto(f"/p/{project.slug}/annotate/")

    # The first item comes with the page; the second is swapped in by htmx.
    for judged in range(2):
        progress_shows(page, judged)
        for region in (page.get_by_test_id("prompt"), page.locator("#item article", has_text="click")):
            for text in HOSTILE:
                expect(region).to_contain_text(text)
            expect(region.locator("script, img, iframe, object, embed, a")).to_have_count(0)
        assert page.locator('a[href^="javascript" i]').count() == 0
        assert page.evaluate("typeof window.__xss") == "undefined"
        judge(page, "3", "tie", judged)

    expect(page.get_by_test_id("done")).to_be_visible()
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    assert csp_reports == [], "something tried to run and only the CSP stopped it"


def test_enter_on_the_skip_button_skips_instead_of_judging(page, live_server):
    project = make_project("solo", items=2)
    log_in_by_keyboard(page)
    page.goto(f"/p/{project.slug}/annotate/")
    first = shown_ids(page)
    page.keyboard.press("1")
    page.get_by_role("button", name="Skip this item").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("response-A")).not_to_have_attribute("data-response-id", str(first[0]))
    progress_shows(page, 0)
    assert not Judgment.objects.exists()
    assert Assignment.objects.filter(state=Assignment.State.SKIPPED).count() == 1
