"""The dashboard in a real browser: Chart.js draws the review chart (and, for a Manager, the money chart) from
the page's JSON under the strict CSP, the links lead to the filtered pages, and a Reviewer sees no money."""

from tests.e2e.browser import BROWSER_MARKS, DOCS_SCREENSHOTS, log_out, login, screenshot
from tests.gestima.dashkit import make_house

pytestmark = BROWSER_MARKS

CHART_DATA = """(id) => {
  const chart = Chart.getChart(document.querySelector(`#${id} canvas`));
  return chart && {type: chart.config.type, labels: chart.data.labels,
                   datasets: chart.data.datasets.map(d => ({label: d.label, data: d.data})),
                   y: chart.options.scales.y.title.text, x: chart.options.scales.x.title.text};
}"""


def _watch(page):
    errors, violations = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.expose_function("reportViolation", lambda text: violations.append(text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));"
    )
    return errors, violations


def test_reviewer_and_manager_read_their_dashboard(live_server, transactional_db, browser_page):
    page = browser_page
    errors, violations = _watch(page)
    house = make_house()

    login(page, live_server, "rita", "Review-pw-2026")
    page.wait_for_selector("#reviews-chart canvas")
    chart = page.evaluate(CHART_DATA, "reviews-chart")
    assert chart["type"] == "bar" and len(chart["labels"]) == 30
    assert chart["x"] == "Day" and chart["y"].startswith("Decisions")
    series = {d["label"]: d["data"] for d in chart["datasets"]}
    assert series["rita"][-1] == 1 and series["rita"][-2] == 1 and series["rolf"][-2] == 1
    assert page.is_visible("#reviews-chart canvas")
    assert not page.evaluate("document.querySelector('#reviews-chart details').open")  # the table folds away
    assert page.query_selector("#dash-money") is None and page.query_selector("#spend-chart") is None
    assert "$" not in page.inner_text("#dashboard")

    page.click("#dash-drift a")  # the drift flag leads to the filtered example list
    page.wait_for_selector("#result_list")
    assert "ground_truth_changed=yes" in page.url
    assert page.locator("#result_list tbody tr").count() == 1
    page.go_back()
    page.click("#dash-next-steps >> text=3 examples wait for review")
    page.wait_for_selector(".review-counts, #review-zoom-label")
    assert "/review/" in page.url

    log_out(page)
    login(page, live_server, "mara", "Manager-pw-2026")
    page.wait_for_selector("#spend-chart canvas")
    spend = page.evaluate(CHART_DATA, "spend-chart")
    assert spend["labels"] == ["openai", "together"] and spend["y"] == "US dollars (USD)"
    assert {d["label"]: d["data"] for d in spend["datasets"]}["Training"] == [12.25, 3]
    assert page.evaluate(CHART_DATA, "reviews-chart")["labels"][-1] == chart["labels"][-1]
    screenshot(page, "dashboard", directory=DOCS_SCREENSHOTS)

    page.click("#dash-drawings a")  # failed drawings: the filtered changelist
    page.wait_for_selector("#result_list")
    assert "status__exact=failed" in page.url and page.locator("#result_list tbody tr").count() == 2
    page.go_back()
    page.click(f"#dash-next-steps >> text=run {house['together'].pk} succeeded: evaluate it")
    page.wait_for_load_state()
    assert page.url.endswith(f"/admin/finetune/trainingrun/{house['together'].pk}/change/")
    page.go_back()
    page.click("#dash-next-steps >> text=brackets v1 is ready to launch")
    page.wait_for_selector("#id_dataset_version")
    assert page.input_value("#id_dataset_version") == str(house["ready"].pk)
    page.wait_for_timeout(300)  # let late violation reports arrive
    assert violations == [], violations
    assert [e for e in errors if "favicon" not in e] == [], errors
