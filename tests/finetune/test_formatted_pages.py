"""The admin as a cockpit: estimates, model cards, promotion reports and checkpoint metrics read as tables and
Markdown made HTML (hostile text shows as text), with the raw JSON (and the card's Markdown) downloadable behind the
page's own view permission; every answer of a JSON download is JSON."""

import json
import re
from html import unescape

import pytest
from django.urls import reverse

from tests.factories import make_user
from tests.finetune.formatkit import (
    CHECKPOINT_METRICS,
    FT_MODEL,
    HOSTILE,
    make_promoted_version,
    make_run_with_checkpoints,
    make_scored_estimate,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(roles):
    return make_user("Manager")


@pytest.fixture
def reviewer(roles):
    return make_user("Reviewer")


def _table(html: str, table_id: str) -> list[list[str]]:
    """The rows of the table `table_id` as a person reads them (header row first)."""
    found = re.search(rf'<table[^>]*id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert found, f"no table {table_id}"
    return [
        [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(1), re.S)
    ]


def _download(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Disposition"].startswith("attachment;")
    return response


# --- estimates ---------------------------------------------------------------------------------
def test_an_estimate_reads_as_tables_with_its_live_score_and_the_reason_as_text(client, reviewer):
    estimate = make_scored_estimate()
    client.force_login(reviewer)
    html = client.get(reverse("admin:finetune_estimate_change", args=[estimate.pk])).content.decode()

    assert _table(html, "estimate-operations") == [
        ["Machine", "Operation", "Time per piece (min/pc)", "Setup (min)"],
        ["NZX 2000", "turning", "10.0", "30.0"],
        ["DMU 50", "milling", "5.0", "30.0"],
    ]
    assert ["Material", "C45"] in _table(html, "estimate-fields")
    answered = _table(html, "estimate-answered-by")
    assert answered[0] == ["Answered by", f"{FT_MODEL} (Fallback model, provider openai_ft)"]
    assert answered[1] == ["Why the fallback", HOSTILE]  # read as text ...
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html  # ... never run
    assert "APE 25.0 %" in unescape(re.sub(r"<[^>]+>", "", html))
    assert _table(html, "estimate-live-errors") == [
        ["Value", "Machine", "Operation", "Measured", "Estimated", "APE"],
        ["Time per piece (min/pc)", "NZX 2000", "turning", "8.0", "10.0", "25.0 %"],
        ["Setup (min)", "NZX 2000", "turning", "40.0", "30.0", "25.0 %"],
    ]
    assert "{&#x27;" not in html and '"operations": [' not in html  # no dict or JSON dump left on the page


def test_an_unscored_estimate_says_so_and_the_list_shows_live_ape_with_constant_queries(
    client, reviewer, django_assert_max_num_queries
):
    scored = make_scored_estimate(part="FMT-1")
    client.force_login(reviewer)
    page = client.get(reverse("admin:finetune_estimate_changelist")).content.decode()
    row = next(r for r in _table(page, "result_list") if r and r[0] == str(scored.pk))
    assert "25.0 %" in row

    from finetune.models import Estimate

    unscored = Estimate.objects.create(
        task=scored.task, drawing=scored.drawing, model_name="gpt-4o", provider="openai", output=None, error="boom"
    )
    html = client.get(reverse("admin:finetune_estimate_change", args=[unscored.pk])).content.decode()
    assert "Not scored yet" in html and "No answer" in html

    with django_assert_max_num_queries(12) as few:
        client.get(reverse("admin:finetune_estimate_changelist"))
    for i in range(5):
        make_scored_estimate(part=f"FMT-{i + 10}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse("admin:finetune_estimate_changelist")).content.decode()
    assert page.count("25.0 %") == 6


def test_the_estimate_json_download_is_the_api_answer_with_its_live_score(client, reviewer):
    estimate = make_scored_estimate()
    client.force_login(reviewer)
    response = _download(client, reverse("admin:finetune_estimate_json", args=[estimate.pk]))
    assert response["Content-Type"] == "application/json"
    assert f'filename="estimate-{estimate.pk}.json"' in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["output"] == estimate.output and data["fallback_reason"] == HOSTILE
    assert data["answered_by"] == "fallback" and data["simulated"] is False
    assert data["live_score"]["ape"] == pytest.approx(0.25)
    errors = data["live_score"]["errors"]["operations[].machine_time_min_per_piece"]
    assert errors == [{"key": ["NZX 2000", "turning"], "actual": 8.0, "predicted": 10.0, "ape": 0.25, "pe": 0.25}]


def test_json_downloads_answer_json_refusals(client, roles):
    estimate = make_scored_estimate()
    run = make_run_with_checkpoints()
    urls = [
        reverse("admin:finetune_estimate_json", args=[estimate.pk]),
        reverse("admin:finetune_trainingrun_checkpoints_json", args=[run.pk]),
    ]
    for url in urls:  # not logged in: JSON, not the login page
        response = client.get(url)
        assert response.status_code == 403 and response["Content-Type"] == "application/json"
        assert "Log in" in response.json()["error"]

    client.force_login(make_user())  # staff without a role: may view nothing
    for url in urls:
        response = client.get(url)
        assert response.status_code == 403 and "may not view" in response.json()["error"]

    client.force_login(make_user("Reviewer"))  # estimates yes, training runs no (the run page is Manager only)
    assert client.get(urls[0]).status_code == 200
    refused = client.get(urls[1])
    assert refused.status_code == 403 and refused.json() == {"error": "You may not view training runs."}
    missing = client.get(reverse("admin:finetune_estimate_json", args=[estimate.pk + 1000]))
    assert missing.status_code == 404 and missing.json()["error"] == "No such estimate."
    posted = client.post(urls[0])
    assert posted.status_code == 405 and posted["Content-Type"] == "application/json"


# --- model versions: card and report -------------------------------------------------------------
def test_the_model_card_is_markdown_made_html_with_markup_in_it_as_text(client, manager, reviewer):
    version = make_promoted_version(manager)
    client.force_login(reviewer)
    html = client.get(reverse("admin:finetune_modelversion_change", args=[version.pk])).content.decode()
    card = re.search(r'<div class="model-card" id="model-card">(.*?)</div>', html, re.S).group(1)

    assert f"<h1>Model card: {version.model_name}</h1>" in card
    assert "<h2>Promotion policy</h2>" in card
    metrics = _table(card.replace("<table>", '<table id="card-metrics">'), "card-metrics")
    assert metrics[0] == ["Metric", "Value"] and metrics[1][0] == "JSON validity"
    assert any(row[0] == "MAPE operations[].machine_time_min_per_piece" for row in metrics)
    assert "<script>" not in card and "<img" not in card and "&lt;script&gt;" in card
    assert 'href="javascript' not in card  # markdown-it refuses the link; the text stays
    assert "<strong>Overridden</strong>" in card
    assert "Download Markdown" in html and "# Model card" not in html  # no raw Markdown on the page


def test_the_report_reads_as_tables(client, manager, reviewer):
    version = make_promoted_version(manager)
    client.force_login(reviewer)
    html = client.get(reverse("admin:finetune_modelversion_change", args=[version.pk])).content.decode()
    facts = dict(row for row in _table(html, "report-facts"))
    assert facts["Policy"] == "failed"
    assert facts["Override reason"].startswith(HOSTILE)
    checks = _table(html, "report-checks")
    assert checks[0] == ["Check", "Result", "Value", "Threshold", "Why"]
    mape = next(row for row in checks if row[0] == "max_mape")
    assert (
        mape[1:4] == ["FAIL", "0.2", "0.15"] and "MAPE of operations[].machine_time_min_per_piece is 20.0 %" in mape[4]
    )
    assert ["JSON validity", "100.0 % (95 % CI 100.0 %–100.0 %)", "20"] in _table(html, "report-metrics")
    assert '"checks": [' not in html


def test_card_and_report_downloads_need_the_view_permission(client, manager, reviewer):
    version = make_promoted_version(manager)
    card_url = reverse("admin:finetune_modelversion_card", args=[version.pk])
    report_url = reverse("admin:finetune_modelversion_report", args=[version.pk])
    client.force_login(reviewer)
    card = _download(client, card_url)
    assert card["Content-Type"] == "text/markdown; charset=utf-8" and card.content.decode() == version.model_card
    report = _download(client, report_url)
    assert report["Content-Type"] == "application/json" and json.loads(report.content) == version.report

    client.force_login(make_user())
    assert client.get(card_url).status_code == 403
    refused = client.get(report_url)
    assert refused.status_code == 403 and refused["Content-Type"] == "application/json"
    assert refused.json() == {"error": "You may not view model versions."}


# --- training runs: checkpoint metrics ----------------------------------------------------------
def test_checkpoint_metrics_are_a_table_and_their_json_downloads(client, manager):
    run = make_run_with_checkpoints()
    client.force_login(manager)
    html = client.get(reverse("admin:finetune_trainingrun_change", args=[run.pk])).content.decode()
    assert _table(html, "run-checkpoints") == [
        ["Step", "Model checkpoint", "Train loss", "Train accuracy", "Valid loss", "Other"],
        ["20", f"{FT_MODEL}:ckpt-step-20", "0.5000", "81.2 %", "0.7500", "lr 0.1"],
        ["10", f"{FT_MODEL}:ckpt-step-10", "1.2346", "61.0 %", "1.5000", "—"],
    ]
    assert "{&#x27;step&#x27;" not in html  # the dict is gone

    response = _download(client, reverse("admin:finetune_trainingrun_checkpoints_json", args=[run.pk]))
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert data["run"] == run.pk and data["simulated"] is False
    assert [(c["step"], c["metrics"]) for c in data["checkpoints"]] == CHECKPOINT_METRICS
