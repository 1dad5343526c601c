"""Chromium through Playwright against pytest-django's live server.

The browser is the Debian `chromium` package; browsers are never downloaded. When it
is missing a browser test is skipped, except on CI (the `CI` variable set), where it fails.
"""

import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000  # generous: CI shares two cores with PostgreSQL and the live server


def pytest_collection_modifyitems(config, items):
    """Run browser tests last.

    While Playwright runs, the main thread has a running event loop, which breaks
    `async_to_sync` (and Django's async-safety check) in any test that comes after.
    The browser is session-scoped, so it stays up until the session ends: keep
    every other test before it. The sort is stable, so other orderings are kept.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = "Chromium is not installed (`apt-get install chromium`); browser tests need it."
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One Chromium for the session.

    Playwright's sync API keeps an asyncio loop running in the main thread, so Django
    would refuse the ORM calls of the test itself (fixtures, database flushes, checks
    on stored rows). The check is switched off only while Playwright runs; the live
    server answers the browser from its own threads, where it still holds.
    """
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh page in its own context (own cookies), with relative URLs on the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()
