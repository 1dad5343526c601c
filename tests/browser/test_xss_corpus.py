"""The XSS corpus shown on every page that shows prompts and responses, in Chromium:
no dialog opens, no script marker is set, no request leaves for another host."""

import json
from urllib.parse import urlparse

import pytest

from labeling.models import Judgment
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory
from tests.security.xss_corpus import PAYLOADS

pytestmark = pytest.mark.browser
PER_ITEM = 6


def _watch(page, live_server):
    events = {"dialogs": [], "foreign": []}
    host = urlparse(live_server.url).netloc
    page.on("dialog", lambda dialog: (events["dialogs"].append(dialog.message), dialog.dismiss()))
    page.on(
        "request",
        lambda request: (
            events["foreign"].append(request.url)
            if urlparse(request.url).netloc not in (host, "") and not request.url.startswith(("data:", "about:"))
            else None
        ),
    )
    return events


def _inert(page, events, region="#item"):
    assert page.evaluate("window.__xss") is None, "a payload ran script"
    assert events["dialogs"] == []
    assert events["foreign"] == []
    planted = ", ".join(f"{region} .markdown {tag}" for tag in ("script", "img", "iframe", "object", "embed", "svg"))
    assert page.locator(planted).count() == 0


def test_the_corpus_is_inert_on_every_page(page, live_server, client, tmp_path, settings):
    settings.LABELING_JOBS_DIR = tmp_path / "jobs"
    assert len(PAYLOADS) >= 50
    project = ProjectFactory(slug="xss", overlap=1)
    user = MembershipFactory(project=project, user__username="anna").user
    chunks = [PAYLOADS[start : start + PER_ITEM] for start in range(0, len(PAYLOADS), PER_ITEM)]
    for index, chunk in enumerate(chunks):
        half = len(chunk) // 2
        ItemFactory(
            project=project,
            prompt=[
                {"role": "system", "content": "\n\n".join(chunk)},
                {"role": "user", "content": "\n\n".join(reversed(chunk))},
            ],
            responses=[
                "\n\n".join(chunk[:half]) + f"\n\nleft {index}",
                "\n\n".join(chunk[half:]) + f"\n\nright {index}",
            ],
        )
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    page.context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    events = _watch(page, live_server)

    page.goto("/p/xss/annotate/", wait_until="domcontentloaded")
    for _ in range(len(chunks)):
        page.get_by_test_id("prompt").wait_for()
        _inert(page, events)
        page.keyboard.press("d")  # the differences view shows the raw text too
        _inert(page, events)
        page.keyboard.press("d")
        page.keyboard.press("1")
        with page.expect_response(lambda response: response.url.endswith("/judge/")):
            page.keyboard.press("Enter")
    page.get_by_test_id("done").wait_for()
    _inert(page, events)

    page.goto("/p/xss/history/", wait_until="domcontentloaded")
    _inert(page, events)
    for judgment in Judgment.objects.filter(project=project):
        page.goto(f"/p/xss/judgments/{judgment.pk}/", wait_until="domcontentloaded")
        page.get_by_test_id("prompt").wait_for()
        _inert(page, events)
    assert PAYLOADS[0].split(">")[0] in page.content().replace("&lt;", "<")  # shown as text, not dropped

    # The manager's pages that show prompts and responses: items, and an import's preview.
    manager = MembershipFactory(project=project, role="manager", user__username="boss").user
    client.force_login(manager)
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    for path in ("/p/xss/items/", "/p/xss/"):
        page.goto(path, wait_until="domcontentloaded")
        _inert(page, events, region="main")
    rows = tmp_path / "hostile.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": f"h{n}", "prompt": payload, "responses": [payload, f"safe {n}"]}) + "\n"
            for n, payload in enumerate(PAYLOADS)
        )
    )
    page.goto("/p/xss/import/", wait_until="domcontentloaded")
    page.locator('input[type="file"]').set_input_files(str(rows))
    with page.expect_navigation(wait_until="domcontentloaded"):
        page.get_by_role("button", name="Check the file").click()
    page.get_by_test_id("preview").wait_for()
    _inert(page, events, region="main")
