"""The cockpit's formatted pages in a real browser: a person reads an estimate, a model card and report, and a run's
checkpoint metrics as tables (hostile text as text, no script runs), and saves the raw JSON and the card's Markdown
with the pages' download links. Simulated results carry the "Simulated" badge on every page that shows them."""

import json
from pathlib import Path

from finetune.models import EvalRun, ModelVersion
from tests.e2e.browser import BROWSER_MARKS, log_out, login, screenshot
from tests.factories import make_user
from tests.finetune.evalkit import make_done_eval_run, make_plan_dataset_version
from tests.finetune.formatkit import (
    CHECKPOINT_METRICS,
    FT_MODEL,
    HOSTILE,
    make_promoted_version,
    make_run_with_checkpoints,
    make_scored_estimate,
)

pytestmark = BROWSER_MARKS

ROWS = """(id) => Array.from(document.querySelectorAll(`#${id} tr`)).map(
    tr => Array.from(tr.querySelectorAll("th, td")).map(c => c.textContent.trim()))"""


def _rows(page, table_id: str) -> list[list[str]]:
    return page.evaluate(ROWS, table_id)


def _download(page, link: str) -> tuple[str, str]:
    """Click a download link as a person does; (the suggested file name, the file's text)."""
    with page.expect_download() as info:
        page.click(link)
    download = info.value
    return download.suggested_filename, Path(download.path()).read_text(encoding="utf-8")


def _watch_dialogs(page) -> list[str]:
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return dialogs


def test_a_manager_reads_the_formatted_pages_and_downloads_their_json(live_server, transactional_db, browser_page):
    page = browser_page
    dialogs = _watch_dialogs(page)
    manager = make_user("Manager", username="mara", password="Manager-pw-2026")
    estimate = make_scored_estimate()
    version = make_promoted_version(manager)
    run = make_run_with_checkpoints()
    login(page, live_server, "mara", "Manager-pw-2026")

    # An estimate: the operations, who answered and why, the live score.
    page.goto(f"{live_server.url}/admin/finetune/estimate/{estimate.pk}/change/")
    assert _rows(page, "estimate-operations") == [
        ["Machine", "Operation", "Time per piece (min/pc)", "Setup (min)"],
        ["NZX 2000", "turning", "10.0", "30.0"],
        ["DMU 50", "milling", "5.0", "30.0"],
    ]
    assert _rows(page, "estimate-answered-by")[1] == ["Why the fallback", HOSTILE]
    assert "APE 25.0 %" in page.inner_text("#estimate-live-score")
    assert _rows(page, "estimate-live-errors")[1] == [
        "Time per piece (min/pc)",
        "NZX 2000",
        "turning",
        "8.0",
        "10.0",
        "25.0 %",
    ]
    assert page.query_selector(".simulated-badge") is None  # a real model's answer
    screenshot(page, "estimate-formatted")
    name, text = _download(page, "#estimate-answer >> text=Download JSON")
    data = json.loads(text)
    assert name == f"estimate-{estimate.pk}.json"
    assert data["output"] == estimate.output and data["fallback_reason"] == HOSTILE
    assert data["live_score"]["ape"] == 0.25

    # A model version: the card as HTML (its metrics table), the report's checks, both downloads.
    page.goto(f"{live_server.url}/admin/finetune/modelversion/{version.pk}/change/")
    assert page.inner_text("#model-card h1") == f"Model card: {version.model_name}"
    card_rows = page.evaluate(
        """() => Array.from(document.querySelectorAll("#model-card table tr")).map(
            tr => Array.from(tr.querySelectorAll("th, td")).map(c => c.textContent.trim()))"""
    )
    assert card_rows[0] == ["Metric", "Value"] and card_rows[1][0] == "JSON validity"
    assert HOSTILE in page.inner_text("#model-card")  # the override reason, shown as text
    assert page.query_selector("#model-card a[href^='javascript']") is None
    mape = next(row for row in _rows(page, "report-checks") if row[0] == "max_mape")
    assert mape[1] == "FAIL" and "20.0 %" in mape[4]
    screenshot(page, "model-version-formatted")
    name, text = _download(page, "#promotion-report ~ .gestima-downloads >> text=Download JSON")
    assert name == f"promotion-report-{version.task.slug}-{version.pk}.json" and json.loads(text) == version.report
    name, text = _download(page, "text=Download Markdown")
    assert name.endswith(".md") and text == version.model_card

    # A training run: the checkpoint metrics as a table, and their JSON.
    page.goto(f"{live_server.url}/admin/finetune/trainingrun/{run.pk}/change/")
    assert _rows(page, "run-checkpoints") == [
        ["Step", "Model checkpoint", "Train loss", "Train accuracy", "Valid loss", "Other"],
        ["20", f"{FT_MODEL}:ckpt-step-20", "0.5000", "81.2 %", "0.7500", "lr 0.1"],
        ["10", f"{FT_MODEL}:ckpt-step-10", "1.2346", "61.0 %", "1.5000", "—"],
    ]
    name, text = _download(page, "#run-checkpoints ~ .gestima-downloads >> text=Download JSON")
    data = json.loads(text)
    assert name == f"run-{run.pk}-checkpoints.json" and data["run"] == run.pk
    assert [(c["step"], c["metrics"]) for c in data["checkpoints"]] == CHECKPOINT_METRICS
    assert dialogs == []  # no hostile script ran on any page


def test_simulated_results_carry_the_badge_on_every_page(live_server, transactional_db, browser_page):
    page = browser_page
    manager = make_user("Manager", username="mara", password="Manager-pw-2026")
    make_user("Reviewer", username="rita", password="Review-pw-2026")
    estimate = make_scored_estimate(provider="simulated_ft", reason="")
    run = make_run_with_checkpoints(provider="simulated")
    eval_run = make_done_eval_run(make_plan_dataset_version(n_validation=3, n_train=0), training_run=run)
    EvalRun.objects.filter(pk=eval_run.pk).update(provider="simulated")
    version = make_promoted_version(manager)
    ModelVersion.objects.filter(pk=version.pk).update(provider="simulated")
    pages = {
        "estimate": f"/admin/finetune/estimate/{estimate.pk}/change/",
        "model version": f"/admin/finetune/modelversion/{version.pk}/change/",
        "eval run": f"/admin/finetune/evalrun/{eval_run.pk}/change/",
        "training run": f"/admin/finetune/trainingrun/{run.pk}/change/",
    }

    login(page, live_server, "mara", "Manager-pw-2026")
    for what, url in pages.items():
        page.goto(live_server.url + url)
        badge = page.locator(".simulated-badge")
        assert badge.count() == 1 and badge.is_visible(), what
        assert badge.inner_text().startswith("Simulated"), what
    name, text = _download(page, "#run-checkpoints ~ .gestima-downloads >> text=Download JSON")
    assert json.loads(text)["simulated"] is True
    screenshot(page, "training-run-simulated")

    log_out(page)  # a Reviewer reads estimates and models, and is told the same
    login(page, live_server, "rita", "Review-pw-2026")
    for what in ("estimate", "model version", "eval run"):
        page.goto(live_server.url + pages[what])
        assert page.locator(".simulated-badge").is_visible(), what
    page.goto(live_server.url + pages["estimate"])
    _, text = _download(page, "#estimate-answer >> text=Download JSON")
    assert json.loads(text)["simulated"] is True
