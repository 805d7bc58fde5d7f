"""The charts of the run, eval, comparison and dataset-version pages in a real browser: Chart.js draws each from
the page's JSON under the strict CSP, its table holds the same numbers, the run's curves grow while it runs and
the polling stops when it ends. Screenshots of the run and eval pages go to docs/screenshots/."""

import pytest
from django.urls import reverse

from finetune.models import RunMetric, TrainingRun
from tests.e2e.browser import BROWSER_MARKS, DOCS_SCREENSHOTS, login, screenshot
from tests.e2e.test_dashboard_browser import _watch
from tests.finetune.chartkit import make_chart_house

pytestmark = BROWSER_MARKS

# What the chart drew and what its table says, for one figure.
DRAWN = """(id) => {
  const figure = document.getElementById(id);
  const chart = Chart.getChart(figure.querySelector("canvas"));
  const cells = (row) => [...row.children].map((cell) => cell.textContent.trim());
  return chart && {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({label: d.label, type: d.type, data: d.data})),
    x: {type: chart.options.scales.x.type, title: chart.options.scales.x.title.text},
    y: {type: chart.options.scales.y.type, title: chart.options.scales.y.title.text},
    legend: chart.options.plugins.legend.display,
    visible: !figure.querySelector(".dash-chart-canvas").hidden,
    columns: cells(figure.querySelector("thead tr")),
    rows: [...figure.querySelectorAll("tbody tr")].map(cells),
  };
}"""

# The width live.js (or the template) gave the run page's progress bar.
BAR_WIDTH = "() => document.querySelector('.run-progress [data-live-bar=progress]').style.width"


@pytest.fixture(autouse=True)
def _fast_polling(settings):
    settings.ADMIN_LIVE_POLL_SECONDS = 0.3


@pytest.fixture
def browser_page(browser_page):
    # As in test_buttons_browser: polls reach the live server only while this thread waits in a Playwright call,
    # so the ORM writes of the test (sharing SQLite's connection with the server) never meet one.
    browser_page.route("**/live.json", lambda route: route.fulfill(response=route.fetch()))
    return browser_page


def _number(text: str):
    return None if text == "" else float(text)


def _same_numbers(drawn: dict) -> int:
    """Every number the chart drew is in its table, at the same place; returns how many points were checked."""
    checked = 0
    datasets, rows, columns = drawn["datasets"], drawn["rows"], drawn["columns"]
    if drawn["labels"]:  # categories: a row per label, a column per dataset
        assert [row[0] for row in rows] == drawn["labels"]
        for j, dataset in enumerate(datasets):
            assert columns[j + 1] == dataset["label"]
            for row, value in zip(rows, dataset["data"]):
                if isinstance(value, list):
                    assert [float(v) for v in row[j + 1].split(" – ")] == value
                else:
                    assert _number(row[j + 1]) == value
                checked += value is not None
    elif columns[0] == "Series":  # a scatter: a row per point
        table = {(row[0], float(row[1]), float(row[2])) for row in rows}
        for dataset in datasets:
            for point in dataset["data"]:
                assert (dataset["label"], point["x"], point["y"]) in table
                checked += 1
    else:  # curves: a row per x, a column per dataset
        by_x = {float(row[0]): row for row in rows}
        for j, dataset in enumerate(datasets):
            assert columns[j + 1] == dataset["label"]
            for point in dataset["data"]:
                assert _number(by_x[point["x"]][j + 1]) == point["y"]
                checked += 1
    return checked


def _read(page, chart_id: str) -> dict:
    page.wait_for_function(
        "(id) => { const c = document.querySelector(`#${id} canvas`); return c && window.Chart && Chart.getChart(c); }",
        arg=chart_id,
    )
    drawn = page.evaluate(DRAWN, chart_id)
    assert drawn["visible"] and drawn["legend"] and drawn["x"]["title"] and drawn["y"]["title"]
    assert _same_numbers(drawn) > 0, chart_id
    return drawn


def _clean(page, errors, violations):
    page.wait_for_timeout(300)  # let late violation reports arrive
    assert violations == [], violations
    assert [e for e in errors if "favicon" not in e] == [], errors


def test_the_run_page_draws_its_curves_grows_them_live_and_stops_when_the_run_ends(
    live_server, transactional_db, browser_page
):
    page = browser_page
    # Polls are served only while this thread waits in a Playwright call, never while it writes below: the live
    # server shares this thread's in-memory SQLite, where a read beside a write fails with "table is locked".
    page.route("**/live.json", lambda route: route.fulfill(response=route.fetch()))
    errors, violations = _watch(page)
    house = make_chart_house()
    run = house["run"]
    # 4 epochs × ceil(2 train examples / batch 1) = 8 steps: the page shows step 4 of 8 and a bar half full.
    TrainingRun.objects.filter(pk=run.pk).update(resolved_hyperparameters={"n_epochs": 4, "batch_size": 1})
    login(
        page,
        live_server,
        "mara",
        "Manager-pw-2026",
        next_url=reverse("admin:finetune_trainingrun_change", args=[run.pk]),
    )
    assert page.locator(".run-progress [data-live-field=progress]").inner_text().startswith("step 4 / 8 (50%)")
    assert page.evaluate(BAR_WIDTH) == "50%"
    loss = _read(page, "run-loss-chart")
    assert loss["x"] == {"type": "linear", "title": "Training step"}
    assert [d["label"] for d in loss["datasets"]] == ["train", "validation", "checkpoint"]
    assert loss["datasets"][2]["data"] == [{"x": 2, "y": 1.5}, {"x": 4, "y": 0.9}]
    accuracy = _read(page, "run-accuracy-chart")
    assert accuracy["y"]["title"] == "Token accuracy (%)" and accuracy["datasets"][0]["data"][-1]["y"] == 75.0
    screenshot(page, "training-run", directory=DOCS_SCREENSHOTS)

    RunMetric.objects.create(run=run, step=5, train_loss=0.7, train_accuracy=0.8, valid_loss=0.8)
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector('#run-loss-chart canvas')).data.datasets[0].data.length === 5"
    )
    grown = _read(page, "run-loss-chart")
    assert grown["rows"][-1] == ["5", "0.7", "0.8", ""]  # the table follows the chart
    page.wait_for_function(f"() => ({BAR_WIDTH})() === '62%'")  # the bar grows with the steps, no reload
    assert page.locator(".run-progress [data-live-field=progress]").inner_text().startswith("step 5 / 8 (62%)")

    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded")
    page.wait_for_function("() => document.querySelector('[data-live-url]') === null")  # reloaded, not polling
    assert len(_read(page, "run-loss-chart")["datasets"][0]["data"]) == 5
    assert page.evaluate(BAR_WIDTH) == "100%"  # a succeeded run's bar is full
    _clean(page, errors, violations)


@pytest.mark.parametrize("who", [("mara", "Manager-pw-2026"), ("rita", "Review-pw-2026")], ids=["manager", "reviewer"])
def test_the_eval_and_comparison_pages_draw_their_charts(live_server, transactional_db, browser_page, who):
    page = browser_page
    errors, violations = _watch(page)
    house = make_chart_house()
    base, tuned = house["base"], house["tuned"]
    login(page, live_server, *who, next_url=reverse("admin:finetune_evalrun_change", args=[base.pk]))
    histogram = _read(page, "eval-ape-chart")
    assert histogram["y"]["title"] == "Target values" and sum(histogram["datasets"][0]["data"]) == 8
    scatter = _read(page, "eval-scatter-chart")
    assert scatter["x"]["type"] == scatter["y"]["type"] == "logarithmic"
    assert {d["label"] for d in scatter["datasets"]} == {"DMU 50", "NZX 2000", "predicted = actual"}
    intervals = _read(page, "eval-mape-chart-0")
    assert [d["label"] for d in intervals["datasets"]] == ["MAPE (%)", "95 % CI (%)"]
    for i in (1, 2):
        _read(page, f"eval-mape-chart-{i}")
    if who[0] == "mara":
        screenshot(page, "eval-run", directory=DOCS_SCREENSHOTS)

    page.goto(live_server.url + reverse("admin:finetune_evalrun_compare", args=[base.pk, tuned.pk]))
    diff = _read(page, "compare-diff-chart")
    assert [d["label"] for d in diff["datasets"]] == ["B better (3)", "B worse (1)"]
    assert "B better on 3" in page.inner_text("#compare-diff-chart figcaption")
    side = _read(page, "compare-side-chart")
    assert side["labels"] == diff["labels"] and len(side["datasets"]) == 2
    _clean(page, errors, violations)


def test_the_dataset_version_page_draws_its_distributions_for_a_manager(live_server, transactional_db, browser_page):
    page = browser_page
    errors, violations = _watch(page)
    house = make_chart_house()
    login(
        page,
        live_server,
        "mara",
        "Manager-pw-2026",
        next_url=reverse("admin:curation_datasetversion_change", args=[house["version"].pk]),
    )
    assert _read(page, "version-split-chart")["datasets"][0]["data"] == [2, 4]
    assert _read(page, "version-tag-chart")["labels"] == ["material: AlMg3", "material: C45"]
    targets = _read(page, "version-target-chart")
    assert {d["label"] for d in targets["datasets"]} == {"DMU 50", "NZX 2000"}
    _clean(page, errors, violations)
