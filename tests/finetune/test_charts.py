"""The charts' JSON as the pages carry it: the numbers a person reads on each chart and in its table, and that
they are the figures the page's other tables print (metrics, comparison counts)."""

import pytest
from django.urls import reverse

from finetune.metrics import pct
from finetune.models import RunMetric
from tests.finetune.chartkit import chart_json, make_chart_house

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(db):
    return make_chart_house()


def _page(client, user, name, *args):
    client.force_login(user)
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


def test_the_run_page_draws_loss_and_accuracy_per_step_with_its_checkpoints(client, house):
    html = _page(client, house["manager"], "admin:finetune_trainingrun_change", house["run"].pk)
    loss = chart_json(html, "run-loss-chart")
    series = {s["name"]: [[p["x"], p["y"]] for p in s["values"]] for s in loss["series"]}
    assert series["train"] == [[1, 2.0], [2, 1.5], [3, 1.2], [4, 0.9]]
    assert series["validation"] == [[2, 1.6], [4, 1.0]]
    assert series["checkpoint"] == [[2, 1.5], [4, 0.9]]  # on the train curve, at the checkpoints' steps
    assert loss["x_label"] == "Training step" and loss["y_label"].startswith("Loss")
    assert loss["table"]["columns"] == ["Training step", "train", "validation", "checkpoint"]
    assert loss["table"]["rows"][1] == [2, 1.5, 1.6, 1.5] and loss["table"]["rows"][0] == [1, 2.0, "", ""]
    accuracy = chart_json(html, "run-accuracy-chart")
    assert accuracy["y_label"] == "Token accuracy (%)"
    assert [p["y"] for p in accuracy["series"][0]["values"]] == [50.0, 60.0, 70.0, 75.0]
    assert '<th scope="row">2</th><td>1.5</td><td>1.6</td><td>1.5</td>' in html  # the table, without JavaScript


def test_the_live_answer_brings_the_new_steps_of_a_running_run(client, house):
    run = house["run"]
    client.force_login(house["manager"])
    live = reverse("admin:finetune_trainingrun_live", args=[run.pk])
    assert len(client.get(live).json()["charts"]["run-loss-chart"]["series"][0]["values"]) == 4
    RunMetric.objects.create(run=run, step=5, train_loss=0.7, train_accuracy=0.8)
    state = client.get(live).json()
    assert state["active"] and state["charts"]["run-loss-chart"]["series"][0]["values"][-1] == {"x": 5, "y": 0.7}
    assert state["charts"]["run-loss-chart"]["table"]["rows"][-1] == [5, 0.7, "", ""]


def test_the_eval_page_draws_the_ape_bands_the_scatter_and_mape_with_intervals(client, house):
    base = house["base"]
    html = _page(client, house["reviewer"], "admin:finetune_evalrun_change", base.pk)
    histogram = chart_json(html, "eval-ape-chart")
    counts = dict(zip(histogram["labels"], histogram["series"][0]["values"]))
    # Two operations per example: answered exactly, 12 % over, 40 % over, 200 % over.
    assert counts == {
        "0–5 %": 2,
        "5–10 %": 0,
        "10–15 %": 2,
        "15–20 %": 0,
        "20–30 %": 0,
        "30–50 %": 2,
        "50–100 %": 0,
        "≥ 100 %": 2,
    }
    path = "operations[].machine_time_min_per_piece"
    assert sum(counts.values()) == base.metrics["numeric"][path]["n_values"]
    assert histogram["table"]["footer"] == ["All", 8]

    scatter = chart_json(html, "eval-scatter-chart")
    assert scatter["x_scale"] == scatter["y_scale"] == "logarithmic"
    assert scatter["x_label"] == "Actual machine time per piece (min, log scale)"
    points = {s["name"]: [(p["x"], p["y"]) for p in s["values"]] for s in scatter["series"]}
    assert points["NZX 2000"] == [(3.0, 3.0), (8.0, 8.96), (15.0, 21.0), (60.0, 180.0)]
    assert len(points["DMU 50"]) == 4 and "predicted = actual" in points

    by_key = chart_json(html, "eval-mape-chart-0")
    assert by_key["title"] == "MAPE of machine time per piece per machine / operation"
    block = base.metrics["by_key"][path]["NZX 2000 / turning"]["mape"]
    row = by_key["labels"].index("NZX 2000 / turning")
    assert f"{by_key['series'][0]['values'][row]} %" == pct(block["value"])  # as the metrics table prints it
    assert by_key["series"][1]["values"][row] == [round(block["ci"][0] * 100, 1), round(block["ci"][1] * 100, 1)]
    titles = [chart_json(html, f"eval-mape-chart-{i}")["title"] for i in (1, 2)]
    assert titles == ["MAPE of machine time per piece per machine", "MAPE of machine time per piece per material"]
    material = chart_json(html, "eval-mape-chart-2")
    assert material["labels"] == ["AlMg3", "C45"] and material["series"][0]["values"][0] == 40.0


def test_the_comparison_draws_each_example_and_counts_what_the_text_counts(client, house):
    base, tuned = house["base"], house["tuned"]
    html = _page(client, house["reviewer"], "admin:finetune_evalrun_compare", base.pk, tuned.pk)
    diff = chart_json(html, "compare-diff-chart")
    assert "B better on <b>3</b>, worse on <b>1</b>" in html
    assert diff["title"] == "B − A per example: B better on 3, worse on 1, tied on 0"
    assert [s["name"] for s in diff["series"]] == ["B better (3)", "B worse (1)"]
    assert [v for v in diff["series"][0]["values"] if v is not None] == [-75.0, -20.0, -6.0]
    assert diff["series"][1]["values"] == [None, None, None, 10.0]
    side = chart_json(html, "compare-side-chart")
    assert side["labels"] == diff["labels"] and side["series"][0]["values"] == [100.0, 20.0, 6.0, 0.0]
    assert side["series"][1]["values"] == [25.0, 0.0, 0.0, 10.0]


def test_the_dataset_version_page_draws_splits_tags_and_targets(client, house):
    html = _page(client, house["manager"], "admin:curation_datasetversion_change", house["version"].pk)
    splits = chart_json(html, "version-split-chart")
    assert splits["series"] == [{"name": "examples", "values": [2, 4]}, {"name": "groups", "values": [2, 4]}]
    tags = chart_json(html, "version-tag-chart")
    assert tags["labels"] == ["material: AlMg3", "material: C45"]
    assert tags["table"]["rows"] == [["material: AlMg3", 0, 1, 1], ["material: C45", 2, 3, 5]]
    targets = chart_json(html, "version-target-chart")
    assert targets["x_label"] == "Machine time per piece (min)"
    per_machine = {s["name"]: dict(zip(targets["labels"], s["values"])) for s in targets["series"]}
    # Turning 3, 8, 15, 60 min in validation and 3, 8 min in train; milling half of it.
    assert per_machine["NZX 2000"] == {
        "0–1 min": 0,
        "1–2 min": 0,
        "2–5 min": 2,
        "5–10 min": 2,
        "10–20 min": 1,
        "20–50 min": 0,
        "50–100 min": 1,
        "≥ 100 min": 0,
    }
    assert per_machine["DMU 50"]["1–2 min"] == 2 and per_machine["DMU 50"]["20–50 min"] == 1
    assert targets["table"]["footer"][1:3] == [6, 6]


def test_a_reviewer_reads_no_run_or_version_chart(client, house):
    client.force_login(house["reviewer"])
    assert client.get(reverse("admin:finetune_trainingrun_change", args=[house["run"].pk])).status_code == 403
    assert client.get(reverse("admin:finetune_trainingrun_live", args=[house["run"].pk])).status_code == 403
    assert client.get(reverse("admin:curation_datasetversion_change", args=[house["version"].pk])).status_code == 403


def test_a_text_task_version_shows_its_splits_and_no_target_chart(client, house):
    from tests.factories import make_dataset_version

    version = make_dataset_version(n_train=3, n_validation=1)  # support replies: no numeric field
    html = _page(client, house["manager"], "admin:curation_datasetversion_change", version.pk)
    assert chart_json(html, "version-split-chart")["title"] == "Split sizes"
    assert 'id="version-target-chart"' not in html
