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
    first = make_example(
        task=task,
        drawing=make_drawing(part_number="GS-10412", pages=2),
        confidence=0.82,
        tags={"industry": "automotive", "machine": ["NZX 2000", "DMU 50"], "material": "C45"},
    )
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
    page.wait_for_function(
        "() => { const i = document.querySelector('img.review-page'); return i && i.complete && i.naturalWidth > 0; }"
    )
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

    # "a" moves on to the next pending example at once and says so once the approval is stored.
    page.keyboard.press("a")
    page.wait_for_url(f"**/admin/curation/example/{second.pk}/review/")
    page.wait_for_function(
        "(text) => (document.querySelector('ul.messagelist li.success') || {}).innerText?.includes(text)",
        arg=f"Approved example #{first.pk}.",
    )
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


def _records(part_number, minutes):
    return (
        "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"
        f"{part_number},O1,VS20 saw,saw,10,1.10,12,2024-01-01\n"
        f"{part_number},O1,NZX 2000,turning,10,{minutes},40,2024-01-02\n"
        f"{part_number},O2,NZX 2000,turning,10,{minutes},40,2024-03-02\n"
    )


def test_reviewer_keeps_one_target_and_takes_the_new_ground_truth_for_another(
    live_server, transactional_db, browser_page
):
    import json

    from curation.models import GroundTruth
    from curation.services.examples import examples_build
    from curation.services.ground_truth import ground_truth_material_set
    from curation.services.production import production_records_import
    from curation.services.review import example_approve, example_target_update

    page = browser_page
    reviewer = make_user("Reviewer", username="gita", password="Review-pw-2026")
    task = make_task()
    for part_number in ("GT-KEEP", "GT-TAKE"):
        make_drawing(part_number=part_number)
        production_records_import(text=_records(part_number, "10.33"))
        ground_truth_material_set(ground_truth=GroundTruth.objects.get(part_number=part_number), material="C45")
    examples_build(task=task)
    keep = Example.objects.get(group_key="GT-KEEP")
    take = Example.objects.get(group_key="GT-TAKE")
    # The reviewer corrects one turning time to 9.5 and approves the other as built.
    edited = json.loads(keep.target)
    edited["operations"][1]["machine_time_min_per_piece"] = 9.5
    example_target_update(example=keep, user=reviewer, target_text=json.dumps(edited))
    example_approve(example=take, user=reviewer)
    # New production records move both ground truths; the machine keeps both targets and flags them.
    for part_number in ("GT-KEEP", "GT-TAKE"):
        production_records_import(text=_records(part_number, "11.20"))
    examples_build(task=task)  # "Build examples" run again must not undo the reviewer's 9.5 either

    page.goto(f"{live_server.url}/admin/login/?next=/admin/curation/example/%3Fground_truth_changed%3Dyes")
    page.fill("#id_username", "gita")
    page.fill("#id_password", "Review-pw-2026")
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list")
    listed = page.inner_text("#result_list")
    assert "GT-KEEP" in listed and "GT-TAKE" in listed

    page.goto(f"{live_server.url}/admin/curation/example/{keep.pk}/review/")
    assert "Ground truth changed: turning on NZX 2000: time was 10.33, now 11.2 min/pc" in page.inner_text(
        "#review-ground-truth-was-now"
    )
    assert "9.5" in page.inner_text(".review-side")
    page.click("#review-keep-target")
    page.wait_for_selector("ul.messagelist")
    assert f"Kept your target of example #{keep.pk}" in page.inner_text("ul.messagelist")
    assert not page.is_visible("#review-ground-truth-changed")
    assert "Kept the reviewer's target" in page.inner_text("#review-history")
    kept = Example.objects.get(pk=keep.pk)
    assert json.loads(kept.target)["operations"][1]["machine_time_min_per_piece"] == 9.5
    assert kept.ground_truth_target == ""

    page.goto(f"{live_server.url}/admin/curation/example/{take.pk}/review/")
    assert page.inner_text("#review-status") == "Approved"
    page.click("#review-take-ground-truth")
    page.wait_for_selector("ul.messagelist")
    assert f"Example #{take.pk} now has the new ground truth as its target." in page.inner_text("ul.messagelist")
    assert page.inner_text("#review-status") == "Pending"  # the approval was for the old target
    assert "11.2" in page.inner_text(".review-side .review-table")
    taken = Example.objects.get(pk=take.pk)
    assert json.loads(taken.target)["operations"][1]["machine_time_min_per_piece"] == 11.2
    assert taken.changes.filter(field="target", user=reviewer).exists()

    page.goto(f"{live_server.url}/admin/curation/example/?ground_truth_changed=yes")
    assert "0 examples" in page.inner_text("#changelist")
