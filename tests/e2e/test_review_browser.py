"""The review screen in a real browser: a reviewer logs in through the admin form, approves with the keyboard,
moves between examples, rejects with a reason; the database shows the decisions. Keeps a screenshot."""
import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

from curation.models import Example
from tests.factories import make_drawing, make_example, make_ground_truth, make_task, make_user


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls between steps are plain and
    # safe. Scoped to this module's tests so no other test (or subprocess) inherits it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian's chromium is not installed at {CHROMIUM}"),
]


@pytest.fixture
def browser_page(settings):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
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


def test_reviewer_approves_with_the_keyboard_then_rejects_with_a_reason(live_server, transactional_db, browser_page):
    page = browser_page
    reviewer = make_user("Reviewer", username="rita", password="Review-pw-2026")
    task = make_task()
    first = make_example(task=task, drawing=make_drawing(part_number="GS-10412", pages=2), confidence=0.82,
                         tags={"industry": "automotive", "machine": ["NZX 2000", "DMU 50"], "material": "C45"})
    second = make_example(task=task, drawing=make_drawing(part_number="GS-10413"))
    make_ground_truth(first.group_key, high_cv=True)

    # Log in through the admin's own form, as a person would.
    page.goto(f"{live_server.url}/admin/login/?next=/admin/curation/example/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", "Review-pw-2026")
    page.click("input[type=submit]")
    page.wait_for_selector(".review-counts")
    assert "Pending 2" in " ".join(page.inner_text(".review-counts").split())

    page.click("text=Review next pending")
    page.wait_for_url(f"**/admin/curation/example/{first.pk}/review/")
    page.wait_for_function("() => { const i = document.querySelector('img.review-page'); return i && i.complete && i.naturalWidth > 0; }")
    assert page.is_visible("#review-legend") and "approve" in page.inner_text("#review-legend")
    assert "High variation" in page.inner_text("#review-high-cv")

    # Zoom to full resolution and back: the viewer follows the keys.
    page.keyboard.press("1")
    assert page.inner_text("#review-zoom-label") == "100 %"
    page.keyboard.press("0")
    assert page.inner_text("#review-zoom-label") != "100 %"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-screen.png"))
    docs_copy = Path(__file__).resolve().parents[2] / "docs" / "review-screen.png"
    if os.environ.get("REVIEW_SCREENSHOT_TO_DOCS"):
        shutil.copyfile(ARTIFACTS / "review-screen.png", docs_copy)

    # "a" approves and moves on to the next pending example.
    page.keyboard.press("a")
    page.wait_for_url(f"**/admin/curation/example/{second.pk}/review/")
    assert f"Approved example #{first.pk}." in page.inner_text("ul.messagelist")
    assert Example.objects.get(pk=first.pk).status == Example.Status.APPROVED
    assert Example.objects.get(pk=first.pk).reviewer_id == reviewer.pk

    # "p" goes back (the first now shows approved), "n" forward again.
    page.keyboard.press("p")
    page.wait_for_url(f"**/admin/curation/example/{first.pk}/review/")
    assert page.inner_text("#review-status") == "Approved"
    page.keyboard.press("n")
    page.wait_for_url(f"**/admin/curation/example/{second.pk}/review/")

    # "r" puts the cursor in the reason field; the letter itself is not typed into it.
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "review-reason"
    assert page.input_value("#review-reason") == ""
    page.keyboard.type("Dimension 42 h7 unreadable on the scan")
    page.keyboard.press("Enter")
    page.wait_for_selector("ul.messagelist")
    assert "No pending examples left." in page.inner_text("ul.messagelist")

    rejected = Example.objects.get(pk=second.pk)
    assert rejected.status == Example.Status.REJECTED
    assert rejected.rejection_reason == "Dimension 42 h7 unreadable on the scan"
    assert rejected.changes.get().user_id == reviewer.pk
