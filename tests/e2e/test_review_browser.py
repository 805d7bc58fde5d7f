"""The review screen in a real browser: a reviewer logs in through the admin form, approves with the keyboard,
moves between examples, rejects with a reason; the database shows the decisions. Keeps a screenshot."""
import os
import shutil
from pathlib import Path

from curation.models import Example
from tests.e2e.browser import ARTIFACTS, BROWSER_MARKS
from tests.factories import make_drawing, make_example, make_ground_truth, make_task, make_user

pytestmark = BROWSER_MARKS


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
