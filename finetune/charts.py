"""The charts of the training-run, eval-run and comparison pages: one selector per chart, returning the spec
(gestima/charts.py) that both the chart and its table render. Reads only.

Figures are never recomputed here in another way than the pages' tables do: MAPE and its intervals come from
the run's stored metrics (`finetune.metrics.run_metrics`), per-value errors from `metrics.value_errors`,
per-example scores and wins/losses from `metrics.paired_example_scores` (what the comparison counts).
Percentages are rounded to one decimal, as `metrics.pct` prints them.
"""

from __future__ import annotations

from finetune import metrics as metric_lib
from finetune.models import EvalRun, RunMetric, TrainingRun
from finetune.services.eval_results import eval_run_records
from finetune.services.promotion import primary_numeric_path
from gestima.charts import chart_spec, xy_chart_spec

# Upper edges of the APE histogram's bins (fractions); the last bin is everything from 100 % up.
APE_EDGES = (0.05, 0.10, 0.15, 0.20, 0.30, 0.50, 1.00)
MEASURES = {
    "loss": {
        "title": "Loss per training step",
        "y_label": "Loss (cross-entropy per token, lower is better)",
        "unit": "",
        "scale": 1,
        "digits": 4,
    },
    "accuracy": {
        "title": "Token accuracy per training step",
        "y_label": "Token accuracy (%)",
        "unit": "%",
        "scale": 100,
        "digits": 1,
    },
}


def percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def field_label(path: str) -> tuple[str, str]:
    """("machine time per piece", "min") for "operations[].machine_time_min_per_piece": words and unit."""
    _, leaf = metric_lib.parse_path(path)
    unit = "min" if "_min" in leaf else ""
    return leaf.replace("_min", "").replace("_", " "), unit


# --- training run ------------------------------------------------------------------------------


def _rounded(value: float | None, measure: dict) -> float | None:
    return None if value is None else round(value * measure["scale"], measure["digits"])


def training_run_curve(*, run: TrainingRun, measure: str) -> dict:
    """Train and validation loss (or accuracy) per step from the run's RunMetric rows, with its checkpoints
    marked on the train curve (at the checkpoint's step, the last train value at or before it). One query
    for the metrics, one for the checkpoints: the live run page asks again every few seconds."""
    m = MEASURES[measure]
    rows = list(
        RunMetric.objects.filter(run=run)
        .order_by("step")
        .values_list("step", f"train_{measure}", f"valid_{measure}", f"full_valid_{measure}")
    )
    names = ("train", "validation", "full validation (end of run)")
    series = []
    for column, name in enumerate(names, start=1):
        points = [[row[0], _rounded(row[column], m)] for row in rows if row[column] is not None]
        if points:
            series.append(
                {
                    "name": name,
                    "points": points,
                    "kind": "line",
                    "colour": column - 1,
                    **({"style": "point"} if column == 3 else {}),
                }
            )
    train = [(row[0], _rounded(row[1], m)) for row in rows if row[1] is not None]
    marks = []
    for step in run.checkpoints.exclude(step=None).order_by("step").values_list("step", flat=True):
        before = [value for s, value in train if s <= step]
        if before:
            marks.append([step, before[-1]])
    if marks:
        series.append(
            {
                "name": "checkpoint",
                "points": marks,
                "kind": "scatter",
                "style": "point",
                "marker": "triangle",
                "colour": 5,
            }
        )
    return xy_chart_spec(
        title=m["title"], kind="line", x_label="Training step", y_label=m["y_label"], unit=m["unit"], series=series
    )


def training_run_charts(*, run: TrainingRun) -> dict[str, dict]:
    """{figure id: spec} of the run page; the live endpoint sends the same dict while the run runs."""
    return {f"run-{measure}-chart": training_run_curve(run=run, measure=measure) for measure in MEASURES}


# --- one eval run ------------------------------------------------------------------------------


def _evaluated(records: list[dict]) -> list[dict]:
    # As run_metrics: answers lost to API errors are not evaluated (the run can be resumed for them).
    return [r for r in records if r.get("error_kind") != metric_lib.API_ERROR]


def eval_run_ape_histogram(*, run: EvalRun, records: list[dict]) -> dict:
    """How many target values fall in each APE band, on the field promotion decides on; a value the answer
    lacks counts as 100 % (as the MAPE counts it). The total is the MAPE's n_values."""
    path = primary_numeric_path(run.task)
    key_fields = (run.task.metric_spec or {}).get("key", [])
    errors = [e for r in _evaluated(records) for e in metric_lib.value_errors(r, path, key_fields)[0]] if path else []
    apes = [e["ape"] for e in errors]
    missing = sum(1 for e in errors if e["predicted"] is None)
    lows = (0.0, *APE_EDGES)
    labels = [f"{lo * 100:.0f}–{hi * 100:.0f} %" for lo, hi in zip(lows, APE_EDGES)] + [
        f"≥ {APE_EDGES[-1] * 100:.0f} %"
    ]
    counts = [0] * len(labels)
    for ape in apes:
        counts[next((i for i, hi in enumerate(APE_EDGES) if ape < hi), len(APE_EDGES))] += 1
    words, _ = field_label(path or "")
    return chart_spec(
        title=f"Absolute percentage error of {words or 'the numeric field'}, per value",
        kind="bar",
        integer=True,
        x_label="APE band",
        y_label="Target values",
        unit="values",
        labels=labels,
        series=[{"name": "values", "values": counts}] if apes else [],
        note=f"{missing} value(s) missing from the answers, counted as 100 %." if missing else "",
    )


def eval_run_scatter(*, run: EvalRun, records: list[dict]) -> dict:
    """Predicted against actual value of the promotion field, one series per machine (the first key field),
    both axes logarithmic; the diagonal is a perfect answer. Missing or non-positive values cannot sit on a log
    axis: the note counts them."""
    path = primary_numeric_path(run.task)
    key_fields = (run.task.metric_spec or {}).get("key", [])
    groups: dict[str, list] = {}
    left_out = 0
    for record in _evaluated(records) if path else []:
        for e in metric_lib.value_errors(record, path, key_fields)[0]:
            if e["predicted"] is None or e["predicted"] <= 0 or e["actual"] <= 0:
                left_out += 1
                continue
            name = e["key"][0] if e["key"] else "all"
            groups.setdefault(name or "(no machine)", []).append([round(e["actual"], 3), round(e["predicted"], 3)])
    words, unit = field_label(path or "")
    series = [
        {"name": name, "points": sorted(points), "kind": "scatter", "style": "point", "colour": i}
        for i, (name, points) in enumerate(sorted(groups.items()))
    ]
    if series:
        values = [v for s in series for p in s["points"] for v in p]
        series.append(
            {
                "name": "predicted = actual",
                "points": [[min(values), min(values)], [max(values), max(values)]],
                "kind": "line",
                "colour": 7,
            }
        )
    axis = f"{words} ({unit}, log scale)" if unit else f"{words} (log scale)"
    return xy_chart_spec(
        title=f"Predicted against actual {words or 'value'}, by {key_fields[0] if key_fields else 'run'}",
        kind="scatter",
        x_label=f"Actual {axis}",
        y_label=f"Predicted {axis}",
        unit=unit,
        series=series,
        x_scale="logarithmic",
        y_scale="logarithmic",
        layout="long",
        note=f"{left_out} value(s) left out: missing from the answer or not above 0." if left_out else "",
    )


def _interval_chart(*, title: str, x_label: str, blocks: dict[str, dict]) -> dict:
    labels = list(blocks)
    mape = [percent((b or {}).get("value")) for b in blocks.values()]
    ci = [[percent(b["ci"][0]), percent(b["ci"][1])] if (b or {}).get("ci") else None for b in blocks.values()]
    return chart_spec(
        title=title,
        kind="bar",
        x_label=x_label,
        y_label="MAPE (%), bar: 95 % interval",
        unit="%",
        labels=labels,
        totals=False,
        series=[
            {"name": "MAPE (%)", "values": mape, "kind": "line", "style": "point", "colour": 5},
            {"name": "95 % CI (%)", "values": ci, "colour": 0, "style": "interval"},
        ]
        if labels
        else [],
    )


def eval_run_mape_breakdowns(*, run: EvalRun) -> list[dict]:
    """MAPE with its bootstrap interval per machine / operation and per tag value (machine, material, ...), as
    the run's stored metrics have them (the metrics table under "By ..." shows the same blocks)."""
    metrics = run.metrics or {}
    path = primary_numeric_path(run.task)
    if not path:
        return []
    words, _ = field_label(path)
    charts = []
    by_key = (metrics.get("by_key") or {}).get(path)
    if by_key:
        key = " / ".join((run.task.metric_spec or {}).get("key", [])) or "key"
        charts.append(
            _interval_chart(
                title=f"MAPE of {words} per {key}",
                x_label=key.capitalize(),
                blocks={k: b.get("mape") for k, b in by_key.items()},
            )
        )
    for tag, groups in metric_lib.by_tag_items(metrics, order=(run.task.metric_spec or {}).get("tags")):
        charts.append(
            _interval_chart(
                title=f"MAPE of {words} per {tag}",
                x_label=tag.capitalize(),
                blocks={
                    value: ((block.get("numeric") or {}).get(path) or {}).get("mape") for value, block in groups.items()
                },
            )
        )
    return charts


def eval_run_charts(*, run: EvalRun) -> list[tuple[str, dict]]:
    """[(figure id, spec)] of a done eval run's page (nothing while it runs: the figures would move)."""
    if run.status != EvalRun.Status.DONE or not primary_numeric_path(run.task):
        return []
    records = eval_run_records(run)
    charts = [
        ("eval-ape-chart", eval_run_ape_histogram(run=run, records=records)),
        ("eval-scatter-chart", eval_run_scatter(run=run, records=records)),
    ]
    return charts + [(f"eval-mape-chart-{i}", spec) for i, spec in enumerate(eval_run_mape_breakdowns(run=run))]


# --- two eval runs -----------------------------------------------------------------------------


def eval_runs_paired_charts(*, run_a: EvalRun, run_b: EvalRun) -> list[tuple[str, dict]]:
    """Per shared example: B − A of its score (bars coloured by win, loss, tie: the counts the comparison text
    gives) and both scores side by side. Examples are ordered from B's largest win to its largest loss."""

    def by_id(run):
        return {r["id"]: r for r in _evaluated(eval_run_records(run))}

    rows = metric_lib.paired_example_scores(by_id(run_a), by_id(run_b), run_a.task.metric_spec or {})
    rows.sort(key=lambda row: (row["diff"], row["id"]))
    labels = [f"#{row['id']}" for row in rows]
    counts = {o: sum(1 for row in rows if row["outcome"] == o) for o in ("win", "loss", "tie")}
    names = {
        "win": f"B better ({counts['win']})",
        "loss": f"B worse ({counts['loss']})",
        "tie": f"tie ({counts['tie']})",
    }
    colours = {"win": 2, "loss": 5, "tie": 7}
    diffs = [
        {
            "name": names[o],
            "colour": colours[o],
            "values": [percent(row["diff"]) if row["outcome"] == o else None for row in rows],
        }
        for o in ("win", "loss", "tie")
        if counts[o]
    ]
    score = "mean APE of the example's values, or its miss rate (%)"
    difference = chart_spec(
        title=f"B − A per example: B better on {counts['win']}, worse on {counts['loss']}, tied on {counts['tie']}",
        kind="bar",
        stacked=True,
        totals=False,
        x_label="Example",
        unit="percentage points",
        labels=labels,
        y_label="B − A, percentage points (below 0: B better)",
        series=diffs,
    )
    side = chart_spec(
        title="Each example's score in A and B, side by side",
        kind="bar",
        totals=False,
        x_label="Example",
        y_label=f"Score: {score}",
        unit="%",
        labels=labels,
        series=[
            {"name": f"A: {run_a.model_name}", "values": [percent(row["score_a"]) for row in rows], "colour": 0},
            {"name": f"B: {run_b.model_name}", "values": [percent(row["score_b"]) for row in rows], "colour": 1},
        ],
    )
    return [("compare-diff-chart", difference), ("compare-side-chart", side)]
