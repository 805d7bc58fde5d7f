"""Browser tests: Debian's chromium driven by Playwright against the live server, screenshots in test-artifacts/."""

from pathlib import Path

import pytest
from django.db import connections

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls between steps are plain and
    # safe. Scoped to the browser tests so no other test (or subprocess) inherits it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def expect():
    """Playwright's `expect`, waiting long enough for a worker and a reload on a busy machine (5 s by default)."""
    expect = pytest.importorskip("playwright.sync_api").expect
    expect.set_options(timeout=20_000)
    return expect


@pytest.fixture
def browser_page(settings):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
        media_root = Path(settings.MEDIA_ROOT)

        # The test settings run with DEBUG off, so nothing serves MEDIA_URL; hand the browser the page
        # images straight from the test's media directory (only when the storage url is in use).
        def serve_media(route):
            relative = route.request.url.split("/media/", 1)[1].split("?", 1)[0]
            path = media_root / relative
            if path.is_file():
                route.fulfill(status=200, body=path.read_bytes(), content_type="image/png")
            else:
                route.fulfill(status=404, body=b"")

        page.route("**/media/**", serve_media)
        page.set_default_timeout(15_000)
        yield page
        # The test's ORM calls run while Playwright's event loop runs in this thread, so asgiref keeps
        # their database connection apart from the thread's own one, where the test teardown never
        # looks. Closed here, inside the loop, or it holds the test database open to the session's end
        # (PostgreSQL then refuses to drop it: "being accessed by other users").
        connections.close_all()
        browser.close()
