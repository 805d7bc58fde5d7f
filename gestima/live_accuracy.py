"""The dashboard's live accuracy: each model's MAPE on scored estimates, month by month, beside its eval MAPE.

Estimates are scored by finetune/services/estimate_scores.py when the shop's production records arrive; each
stores the sum and count of its APEs on the task's primary numeric path. Here those are summed per model and
month in the database (one query) and turned into a MAPE by `metrics.pooled_value`, the formula an eval run's
MAPE uses, so drift from the eval figure is a real difference, never two formulas disagreeing.
"""

from __future__ import annotations

import datetime

from django.db.models import Count, Q, Sum
from django.utils import timezone

from finetune.metrics import pct, pct_with_ci, pooled_value
from finetune.models import Estimate, ModelVersion
from finetune.services.promotion import primary_numeric_path

MONTHS = 12
# Models shown: the ones with the most scored estimates in the window (the chart stays readable).
MODEL_LIMIT = 6


def month_starts(*, months: int = MONTHS, today: datetime.date | None = None) -> list[datetime.datetime]:
    """The first instants of the last `months` months (this one included) and of the next: months + 1 bounds,
    in the project's time zone (compared in the database, as the reviews chart does its days)."""
    today = today or timezone.localdate()
    year, month = today.year, today.month
    firsts = []
    for _ in range(months):
        firsts.append(datetime.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    firsts.reverse()
    last = firsts[-1]
    firsts.append(datetime.date(last.year + (last.month == 12), last.month % 12 + 1, 1))
    return [timezone.make_aware(datetime.datetime.combine(day, datetime.time.min)) for day in firsts]


def eval_mape_block(*, version: ModelVersion | None, task) -> dict | None:
    """The {value, ci} MAPE block of the eval run that promoted `version`, on the field promotion decides on."""
    path = primary_numeric_path(task)
    metrics = version.eval_run.metrics if version is not None and version.eval_run else {}
    block = ((metrics or {}).get("numeric") or {}).get(path) if path else None
    return (block or {}).get("mape")


def _live(value) -> float | None:
    return round(value * 100, 1) if value is not None else None


def live_accuracy(*, months: int = MONTHS, today: datetime.date | None = None) -> dict:
    """Per model (task and model name): live MAPE per month and over the window, the scored estimates, and
    the eval MAPE of the promotion that made it active. Two queries, whatever the number of estimates."""
    from gestima.charts import chart_spec

    starts = month_starts(months=months, today=today)
    window = Q(created_at__gte=starts[0], created_at__lt=starts[-1])
    sums = {}
    for i in range(months):
        month = Q(created_at__gte=starts[i], created_at__lt=starts[i + 1])
        sums[f"s{i}"] = Sum("live_ape_sum", filter=month)
        sums[f"n{i}"] = Sum("live_ape_n", filter=month)
    rows = list(
        Estimate.objects.filter(window, live_ape_n__gt=0)
        .values("task_id", "task__slug", "model_name")
        .annotate(scored=Count("id"), **sums)
        .order_by("-scored", "model_name")[:MODEL_LIMIT]
    )
    versions = {}
    for version in (
        ModelVersion.objects.filter(model_name__in={r["model_name"] for r in rows})
        .select_related("eval_run", "task")
        .order_by("promoted_at", "pk")
    ):
        versions[(version.task_id, version.model_name)] = version  # the latest promotion wins
    labels = [f"{start:%Y-%m}" for start in starts[:-1]]
    models, series = [], []
    for row in rows:
        version = versions.get((row["task_id"], row["model_name"]))
        block = eval_mape_block(version=version, task=version.task) if version else None
        monthly = [pooled_value([row[f"s{i}"] or 0.0], [row[f"n{i}"] or 0]) for i in range(months)]
        overall = pooled_value([row[f"s{i}"] or 0.0 for i in range(months)], [row[f"n{i}"] or 0 for i in range(months)])
        eval_value = (block or {}).get("value")
        models.append(
            {
                "task": row["task__slug"],
                "model_name": row["model_name"],
                "scored": row["scored"],
                "live": pct(overall),
                "latest": pct(next((m for m in reversed(monthly) if m is not None), None)),
                "eval": pct_with_ci(block, missing="no evaluation"),
                "drift": (overall - eval_value) if overall is not None and eval_value is not None else None,
            }
        )
        series.append({"name": f"{row['model_name']}: live", "values": [_live(m) for m in monthly]})
        if eval_value is not None:
            series.append({"name": f"{row['model_name']}: eval", "values": [_live(eval_value)] * months})
    for model in models:
        model["drift"] = None if model["drift"] is None else f"{model['drift'] * 100:+.1f} points"
    chart = chart_spec(
        title=f"Live MAPE by month (estimates scored against production) beside eval MAPE, last {months} months",
        kind="line",
        x_label="Month of the estimate",
        y_label="MAPE (%)",
        unit="%",
        labels=labels,
        series=series,
        totals=False,
    )
    return {"models": models, "chart": chart}
