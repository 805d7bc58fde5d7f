"""The Content-Security-Policy in a real browser: the review screen and the example list work under it and
chromium reports no violation (no blocked script, style, image or form) and no console error."""

from tests.e2e.browser import BROWSER_MARKS
from tests.factories import make_drawing, make_example, make_ground_truth, make_task, make_user

pytestmark = BROWSER_MARKS


def test_review_screen_and_changelist_have_no_csp_violations(live_server, transactional_db, browser_page):
    page = browser_page
    errors, violations = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.expose_function("reportViolation", lambda text: violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportViolation(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber));"
    )
    make_user("Reviewer", username="rita", password="Review-pw-2026")
    task = make_task()
    example = make_example(task=task, drawing=make_drawing(part_number="CSP-1", pages=2), confidence=0.7)
    make_example(task=task, drawing=make_drawing(part_number="CSP-2"))
    make_ground_truth(example.group_key, high_cv=True)

    response = page.goto(f"{live_server.url}/admin/login/?next=/admin/curation/example/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("#id_username", "rita")
    page.fill("#id_password", "Review-pw-2026")
    page.click("input[type=submit]")
    page.wait_for_selector(".review-counts")
    page.click("#action-toggle")  # the admin's own script (select all) runs under the policy
    assert page.is_checked("input.action-select")

    page.goto(f"{live_server.url}/admin/curation/example/{example.pk}/review/")
    page.wait_for_function(
        "() => { const i = document.querySelector('img.review-page'); return i && i.complete && i.naturalWidth > 0; }"
    )
    page.keyboard.press("1")  # review.js runs: the zoom follows the key
    assert page.inner_text("#review-zoom-label") == "100 %"
    page.goto(f"{live_server.url}/admin/curation/drawing/")
    page.wait_for_selector("#result_list")
    page.wait_for_timeout(300)  # let late violation reports arrive
    assert violations == [], violations
    assert [e for e in errors if "favicon" not in e] == [], errors
