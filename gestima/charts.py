"""Chart specs: the one JSON a chart page carries, drawn by static/gestima/charts.js and rendered as the table
under the chart by templates/admin/gestima/chart.html (so the picture and the figures can never disagree).

`chart_spec` is for categories (days, providers, bins, keys); `xy_chart_spec` for numeric axes (steps, minutes).
Every spec carries `table`: {columns, rows, footer} exactly as the table shows it; the script reads the same
numbers from `series`.
"""

from __future__ import annotations

from typing import Any


def _cell(value: Any) -> Any:
    """A table cell: an interval [low, high] reads "low – high"; a missing value stays empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " – ".join(str(v) for v in value)
    return value


def chart_spec(
    *,
    title: str,
    kind: str,
    x_label: str,
    y_label: str,
    unit: str,
    labels: list,
    series: list[dict],
    stacked: bool = False,
    integer: bool = False,
    totals: bool = True,
    note: str = "",
) -> dict:
    """A chart over categories: one value per label and series (a number, None, or [low, high] for an interval
    drawn as a floating bar). A series may set `kind` ("line" draws its points over bars), `style` ("point":
    markers only; "interval": a light floating bar), `marker` (a Chart.js point style) and `colour` (palette
    index). `totals` adds the row and column sums (counts and money; not for rates)."""

    def total(values):  # intervals have no sum (and a chart of them sets totals=False)
        return sum(v for v in values if isinstance(v, (int, float)))

    rows = [
        {"label": label, "values": [s["values"][i] for s in series], "total": total(s["values"][i] for s in series)}
        for i, label in enumerate(labels)
    ]
    sums = [total(s["values"]) for s in series]
    with_total = totals and len(series) > 1
    table = {
        "columns": [x_label, *(s["name"] for s in series), *(["Total"] if with_total else [])],
        "rows": [[r["label"], *(_cell(v) for v in r["values"]), *([r["total"]] if with_total else [])] for r in rows],
        "footer": (["All", *sums, *([""] if with_total else [])] if totals and series else None),
    }
    return {
        "title": title,
        "kind": kind,
        "stacked": stacked,
        "integer": integer,
        "x_label": x_label,
        "y_label": y_label,
        "unit": unit,
        "labels": labels,
        "series": series,
        "rows": rows,
        "totals": sums,
        "table": table,
        "note": note,
        "x_scale": "category",
        "y_scale": "linear",
    }


def xy_chart_spec(
    *,
    title: str,
    kind: str,
    x_label: str,
    y_label: str,
    unit: str,
    series: list[dict],
    x_scale: str = "linear",
    y_scale: str = "linear",
    layout: str = "wide",
    note: str = "",
) -> dict:
    """A chart over numeric axes: each series has `points` [[x, y], ...] (and optional `kind`, `style`).

    The table is "wide" (one row per x, one column per series: curves over steps) or "long" (one row per point:
    a scatter, where points share no x)."""
    for s in series:
        s["values"] = [{"x": x, "y": y} for x, y in s.pop("points")]
    if layout == "wide":
        xs = sorted({p["x"] for s in series for p in s["values"]})
        by_series = [{p["x"]: p["y"] for p in s["values"]} for s in series]
        table = {
            "columns": [x_label, *(s["name"] for s in series)],
            "rows": [[x, *(_cell(values.get(x)) for values in by_series)] for x in xs],
            "footer": None,
        }
    else:
        table = {
            "columns": ["Series", x_label, y_label],
            "rows": [[s["name"], p["x"], p["y"]] for s in series for p in s["values"]],
            "footer": None,
        }
    return {
        "title": title,
        "kind": kind,
        "stacked": False,
        "integer": False,
        "x_label": x_label,
        "y_label": y_label,
        "unit": unit,
        "labels": [],
        "series": series,
        "table": table,
        "note": note,
        "x_scale": x_scale,
        "y_scale": y_scale,
    }
