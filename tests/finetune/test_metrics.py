"""Metric values against hand-computed ones (finetune/metrics.py is pure: no database)."""

import pytest

from curation.task_presets import TECHNOLOGY_BUILDER
from finetune.metrics import bootstrap_ci, compare_runs, quantile, run_metrics

SPEC = TECHNOLOGY_BUILDER["metric_spec"]
MT = "operations[].machine_time_min_per_piece"
SETUP = "operations[].setup_min"


def plan(turning, milling=None, *, material="C45", setup=30.0, machines=("NZX 2000", "DMU 50")):
    ops = [{"machine": "NZX 2000", "operation": "turning", "machine_time_min_per_piece": turning, "setup_min": setup}]
    if milling is not None:
        ops.append(
            {"machine": "DMU 50", "operation": "milling", "machine_time_min_per_piece": milling, "setup_min": setup}
        )
    return {"part_number": "X", "material": material, "machines": list(machines), "operations": ops}


def rec(i, target, output, *, error_kind="", schema_valid=None, industry="automotive"):
    valid = output is not None
    return {
        "id": i,
        "target": target,
        "output": output,
        "json_valid": valid,
        "schema_valid": valid if schema_valid is None else schema_valid,
        "error_kind": error_kind,
        "tags": {"industry": industry, "material": target["material"], "machine": target["machines"]},
    }


def run_a():
    return [
        # r1: +20 % turning, −20 % milling, setups exact, all categorical right.
        rec(1, plan(10, 5), plan(12, 4)),
        # r2: −25 % turning, milling missing (counts as 100 %), wrong material.
        rec(2, plan(20, 10), plan(15, None, material="S235", machines=("NZX 2000",))),
        # r3: invalid JSON: every target value missing.
        rec(3, plan(8, 4), None, error_kind="invalid_json", industry="medical"),
        # r4: the API failed: left out of every rate.
        rec(4, plan(8, 4), None, error_kind="api_error"),
    ]


def test_run_metrics_match_hand_computed_values():
    m = run_metrics(run_a(), SPEC, n_boot=200)
    assert m["n"] == 4 and m["n_evaluated"] == 3 and m["api_errors"] == 1
    assert m["error_counts"] == {"invalid_json": 1, "api_error": 1}
    assert m["json_validity"]["value"] == pytest.approx(2 / 3)
    assert m["schema_validity"]["value"] == pytest.approx(2 / 3)
    # APEs of machine time: [.2, .2], [.25, 1], [1, 1]
    mt = m["numeric"][MT]
    assert mt["mape"]["value"] == pytest.approx(3.65 / 6)
    assert mt["mdape"]["value"] == pytest.approx((0.25 + 1) / 2)
    assert mt["bias"]["value"] == pytest.approx((0.2 - 0.2 - 0.25 - 1 - 1 - 1) / 6)
    assert mt["n_values"] == 6 and mt["missing"] == 3
    # Setups: r1 exact (0, 0), r2 (0, missing), r3 (missing, missing)
    assert m["numeric"][SETUP]["mape"]["value"] == pytest.approx(3 / 6)
    assert m["categorical"]["material"]["accuracy"]["value"] == pytest.approx(1 / 3)
    assert m["categorical"]["machines"]["accuracy"]["value"] == pytest.approx(1 / 3)
    # Per key and per tag.
    assert m["by_key"][MT]["NZX 2000 / turning"]["mape"]["value"] == pytest.approx((0.2 + 0.25 + 1) / 3)
    assert m["by_key"][MT]["DMU 50 / milling"]["mape"]["value"] == pytest.approx((0.2 + 1 + 1) / 3)
    assert m["by_tag"]["industry"]["automotive"]["numeric"][MT]["mape"]["value"] == pytest.approx(1.65 / 4)
    assert m["by_tag"]["industry"]["medical"]["numeric"][MT]["mape"]["value"] == pytest.approx(1.0)
    assert m["by_tag"]["industry"]["automotive"]["n"] == 2
    # Worst first: r3 (all missing), r2 (mean of .25, 1, 0, 1), r1 (mean of .2, .2, 0, 0).
    assert [(w["id"], round(w["score"], 4)) for w in m["worst"]] == [(3, 1.0), (2, 0.5625), (1, 0.1)]


def test_bootstrap_intervals_are_deterministic_and_bracket_the_estimate():
    m1 = run_metrics(run_a(), SPEC, n_boot=300, seed=7)
    m2 = run_metrics(run_a(), SPEC, n_boot=300, seed=7)
    ci = m1["numeric"][MT]["mape"]["ci"]
    assert ci == m2["numeric"][MT]["mape"]["ci"]
    assert ci[0] <= m1["numeric"][MT]["mape"]["value"] <= ci[1]
    assert ci[0] < ci[1]
    # Identical examples: no spread at all.
    assert (
        bootstrap_ci([[0.1], [0.1], [0.1]], lambda s: sum(x[0] for x in s) / len(s), n_boot=50)
        == [pytest.approx(0.1)] * 2
    )
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([0.0, 10.0], 0.025) == pytest.approx(0.25)


def test_interval_narrows_with_more_examples():
    few = [rec(i, plan(10), plan(10 + (i % 4))) for i in range(8)]
    many = [rec(i, plan(10), plan(10 + (i % 4))) for i in range(400)]
    w_few = (lambda c: c[1] - c[0])(run_metrics(few, SPEC, n_boot=300)["numeric"][MT]["mape"]["ci"])
    w_many = (lambda c: c[1] - c[0])(run_metrics(many, SPEC, n_boot=300)["numeric"][MT]["mape"]["ci"])
    assert w_many < w_few / 3


def test_paired_comparison_counts_wins_and_differences():
    a = run_a()
    b = [
        rec(1, plan(10, 5), plan(10, 5)),  # perfect: B wins
        rec(2, plan(20, 10), plan(15, None, material="S235", machines=("NZX 2000",))),  # same: tie
        rec(3, plan(8, 4), plan(8, 4)),  # valid and exact: B wins
        rec(5, plan(8, 4), plan(8, 4)),  # only in B: not paired
    ]
    c = compare_runs(a, b, SPEC, n_boot=300)
    assert c["n_shared"] == 3 and c["only_b"] == 1 and c["only_a"] == 0
    assert (c["b_wins"], c["b_losses"], c["ties"]) == (2, 0, 1)
    n = c["numeric"][MT]
    assert n["mape_a"] == pytest.approx(3.65 / 6) and n["mape_b"] == pytest.approx(1.25 / 6)
    assert n["diff"] == pytest.approx(-2.4 / 6)
    assert n["ci"][0] <= n["diff"] <= n["ci"][1] and n["ci"][1] <= 0
    assert c["categorical"]["material"]["diff"] == pytest.approx(1 / 3)
    assert c["json_validity"]["diff"] == pytest.approx(1 / 3)
    assert c["largest_differences"][0]["id"] == 3


def test_fast_pooled_interval_equals_the_generic_bootstrap():
    from finetune.metrics import ratio_ci

    groups = [[0.1, 0.3], [0.5], [0.0, 0.2, 0.9], [0.4], [0.05, 0.15]]
    generic = bootstrap_ci(groups, lambda s: sum(map(sum, s)) / sum(map(len, s)), n_boot=300, seed=3)
    fast = ratio_ci([sum(g) for g in groups], [float(len(g)) for g in groups], n_boot=300, seed=3)
    assert fast == pytest.approx(generic) and fast[0] < fast[1]


def test_one_presentation_of_metrics_for_admin_commands_and_model_card():
    from finetune.metrics import metric_rows, pct_with_ci

    metrics = {
        "json_validity": {"value": 0.985, "ci": [0.96, 1.0], "n": 200},
        "schema_validity": {"value": None},
        "numeric": {
            "operations[].setup_min": {
                "mape": {"value": 0.1234, "ci": None},
                "mdape": {"value": 0.1},
                "bias": {"value": -0.02, "ci": [-0.05, 0.01]},
                "n_values": 40,
            }
        },
        "categorical": {"material": {"accuracy": {"value": 1.0, "ci": [1.0, 1.0]}, "n": 20}},
    }
    rows = metric_rows(metrics)
    assert [(name, subject, n) for name, subject, _, n in rows] == [
        ("JSON validity", "", 200),
        ("Schema validity", "", None),
        ("MAPE", "operations[].setup_min", 40),
        ("Median APE", "operations[].setup_min", 40),
        ("Bias", "operations[].setup_min", 40),
        ("Exact match", "material", 20),
    ]
    assert pct_with_ci(rows[0][2]) == "98.5 % (95 % CI 96.0 %–100.0 %)"
    assert pct_with_ci(rows[1][2], missing="—") == "—"
    assert pct_with_ci(rows[2][2]) == "12.3 %"  # no interval (e.g. a single value)
    assert pct_with_ci(rows[4][2]) == "-2.0 % (95 % CI -5.0 %–1.0 %)"
