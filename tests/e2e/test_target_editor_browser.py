"""The target editor of the review screen in a real browser, under the strict CSP: a reviewer changes a time,
adds a row, removes one and saves; a negative time is refused beside its field and nothing is saved. Keeps a
screenshot of the form for the docs."""

import json

from curation.models import Example, ExampleChange, Machine, MaterialAlias
from tests.e2e.browser import BROWSER_MARKS, DOCS_SCREENSHOTS, login, screenshot
from tests.factories import make_drawing, make_example, make_task, make_user, technology_target

pytestmark = BROWSER_MARKS

TIME = "#te-operations-{}-machine_time_min_per_piece"


def _watch(page):
    errors, violations = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.expose_function("reportViolation", lambda text: violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));"
    )
    return errors, violations


def test_reviewer_edits_the_target_through_the_form(live_server, transactional_db, browser_page):
    page = browser_page
    errors, violations = _watch(page)
    make_user("Reviewer", username="rita", password="Review-pw-2026")
    for name, kind in (("VS20 saw", "saw"), ("NZX 2000", "lathe"), ("DMU 50", "mill")):
        Machine.objects.create(name=name, kind=kind)
    MaterialAlias.objects.create(written="X5CrNi18-10", norm="1.4301")
    example = make_example(
        task=make_task(),
        drawing=make_drawing(part_number="GS-20001"),
        target=technology_target("GS-20001", material="1.4301", minutes=6),
    )
    review = f"/admin/curation/example/{example.pk}/review/"

    login(page, live_server, "rita", "Review-pw-2026", next_url=review)
    page.wait_for_selector("#target-editor table")
    assert page.input_value("#te-material") == "1.4301"
    assert page.locator("#target-editor tbody tr").count() == 2
    assert not page.evaluate("document.getElementById('review-edit').open")  # raw JSON folded under Advanced

    # A negative time: the message appears beside the field and the form does not post.
    page.fill(TIME.format(0), "-2")
    assert page.inner_text("[data-error-for='$.operations[0].machine_time_min_per_piece']") == "Must be 0 or more."
    page.click("#review-save-target")
    assert page.evaluate("document.activeElement.id") == TIME.format(0)[1:]
    assert Example.objects.get(pk=example.pk).target == example.target and not ExampleChange.objects.exists()

    # Change the time, remove the milling row, add a saw row; the raw JSON follows every edit.
    page.fill(TIME.format(0), "9")
    assert page.inner_text("[data-error-for='$.operations[0].machine_time_min_per_piece']") == ""
    page.click("[aria-label='Remove row 2']")
    assert page.locator("#target-editor tbody tr").count() == 1
    page.click("#te-add-operations")
    page.select_option("#te-operations-1-machine", "VS20 saw")
    page.select_option("#te-operations-1-operation", "saw")
    page.fill(TIME.format(1), "1.5")
    page.fill("#te-operations-1-setup_min", "10")
    page.fill("#te-material", "1.4404")
    page.fill("#te-machines", "NZX 2000, VS20 saw")
    assert json.loads(page.input_value("#review-target"))["operations"][1]["machine"] == "VS20 saw"
    screenshot(page, "review_form", directory=DOCS_SCREENSHOTS)

    page.click("#review-save-target")
    page.wait_for_selector("ul.messagelist")
    assert f"Target of example #{example.pk} saved." in page.inner_text("ul.messagelist")
    saved = json.loads(Example.objects.get(pk=example.pk).target)
    assert saved["material"] == "1.4404" and saved["machines"] == ["NZX 2000", "VS20 saw"]
    assert [
        (op["machine"], op["operation"], op["machine_time_min_per_piece"], op["setup_min"])
        for op in saved["operations"]
    ] == [("NZX 2000", "turning", 9, 30.0), ("VS20 saw", "saw", 1.5, 10)]
    history = page.inner_text("#review-history")
    for line in (
        "material: 1.4301 → 1.4404",
        "turning on NZX 2000: time 6 → 9 min/pc",
        "milling on DMU 50: removed",
        "saw on VS20 saw: added (1.5 min/pc, setup 10 min)",
    ):
        assert line in history
    assert not errors and not violations
