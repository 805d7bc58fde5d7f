"""The dashboard's live accuracy in a real browser: Chart.js draws each model's live MAPE by month beside its
eval MAPE as lines, from the page's JSON under the strict CSP, and the table folds away under the chart."""

from tests.e2e.browser import BROWSER_MARKS, log_out, login, screenshot
from tests.e2e.test_dashboard_browser import CHART_DATA, _watch
from tests.gestima.dashkit import make_house
from tests.gestima.test_live_accuracy import make_scored_estimates

pytestmark = BROWSER_MARKS


def test_a_manager_sees_the_live_mape_chart_drawn(live_server, transactional_db, browser_page):
    page = browser_page
    errors, violations = _watch(page)
    house = make_house()
    months = make_scored_estimates(house)

    login(page, live_server, "mara", "Manager-pw-2026")
    page.wait_for_selector("#live-mape-chart canvas")
    assert page.is_visible("#live-mape-chart canvas")
    chart = page.evaluate(CHART_DATA, "live-mape-chart")
    assert chart["type"] == "line" and len(chart["labels"]) == 12 and chart["labels"][-1] == months["this"]
    assert chart["y"] == "MAPE (%)"
    series = {d["label"]: d["data"] for d in chart["datasets"]}
    assert series[f"{months['model']}: live"][-2:] == [12.5, 25]
    assert set(series[f"{months['model']}: eval"]) == {12.3}
    assert not page.evaluate("document.querySelector('#live-mape-chart details').open")
    assert "20.8 %" in page.inner_text("#dash-live-models")
    page.locator("#dash-live-accuracy").screenshot(
        path=str(screenshot(page, "live-accuracy").with_suffix(".section.png"))
    )

    log_out(page)
    login(page, live_server, "rita", "Review-pw-2026")
    page.wait_for_selector("#reviews-chart canvas")
    assert page.query_selector("#dash-live-accuracy") is None
    page.wait_for_timeout(300)  # let late violation reports arrive
    assert violations == [], violations
    assert [e for e in errors if "favicon" not in e] == [], errors
