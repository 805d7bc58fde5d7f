"""HTML fragments several eval screens share: metrics, worst examples, a comparison, few-shot facts, a drawing cell,
"serves until". Each is one template include under templates/admin/finetune/evals/; this module only prepares
the figures (as text) and reads through finetune.selectors, one query per table."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from curation.services.base_models import Lifecycle, lifecycle_warning
from finetune.metrics import by_tag_items, metric_rows, pct, pct_with_ci, usd
from finetune.models import EvalRun
from finetune.selectors import eval_run_lineage, eval_run_worst, examples_with_drawings, lineage_lines
from finetune.services.few_shot import few_shot_run_estimate

MISSING = "—"
TABLE = "admin/finetune/evals/_table.html"


def percent(value) -> str:
    return pct(value, missing=MISSING)


def percent_with_ci(block) -> str:
    return pct_with_ci(block, missing=MISSING)


def table_html(headers, rows) -> str:
    return render_to_string(TABLE, {"headers": headers, "rows": rows})


def drawing_cell_html(drawing) -> str:
    """A drawing as a link with page 1 as a thumbnail ("—" without a drawing)."""
    return render_to_string("admin/finetune/evals/_drawing_cell.html", {"drawing": drawing})


def metrics_html(metrics: dict, *, tag_order: list[str] | None = None) -> str:
    if not metrics:
        return MISSING
    by_tag = []
    for tag, groups in by_tag_items(metrics, order=tag_order):
        rows = []
        for value, block in groups.items():
            first = next(iter((block.get("numeric") or {}).values()), {})
            rows.append(
                (value, block.get("n"), percent(block.get("json_validity")), percent_with_ci(first.get("mape")))
            )
        by_tag.append((tag, [tag, "examples", "JSON validity", "MAPE (first numeric field) [95 % CI]"], rows))
    return render_to_string(
        "admin/finetune/evals/_metrics.html",
        {
            "headers": ["Metric", "Value (95 % CI)", "n"],
            "rows": [
                (f"{name} {subject}".strip(), percent_with_ci(block), "" if n is None else n)
                for name, subject, block, n in metric_rows(metrics)
            ],
            "errors": ", ".join(f"{k} {v}" for k, v in sorted((metrics.get("error_counts") or {}).items())),
            "key_headers": ["Key", "MAPE [95 % CI]", "Bias", "examples"],
            "by_key": [
                (
                    path,
                    [
                        (k, percent_with_ci(b.get("mape")), percent_with_ci(b.get("bias")), b.get("n_examples"))
                        for k, b in keys.items()
                    ],
                )
                for path, keys in (metrics.get("by_key") or {}).items()
            ],
            "by_tag": by_tag,
        },
    )


def _example_url(example_id: int) -> str:
    try:
        return reverse("admin:curation_example_change", args=[example_id])
    except NoReverseMatch:
        return ""


def worst_html(run: EvalRun) -> str:
    worst = eval_run_worst(eval_run=run)
    if not worst:
        return MISSING
    rows = []
    for w in worst:
        result = w["result"]
        details = "; ".join(
            f"{'/'.join(d['key'])} {d['path'].split('.')[-1]}: {d['actual']:g} vs "
            f"{'missing' if d['predicted'] is None else format(d['predicted'], 'g')} ({percent(d['ape'])})"
            for d in w["details"]
        )
        error = f"{result.error_kind}: {result.error_message[:200]}" if result and result.error_kind else ""
        rows.append(
            {
                "id": w["id"],
                "example": w["example"],
                "url": _example_url(w["id"]),
                "score": percent(w["score"]),
                "error": error,
                "details": details,
            }
        )
    return render_to_string("admin/finetune/evals/_worst.html", {"rows": rows})


def _ci_text(ci) -> str:
    return f"{percent(ci[0])} – {percent(ci[1])}" if ci else MISSING


def comparison_html(c: dict) -> str:
    jv = c["json_validity"]
    rows = [("JSON validity", percent(jv["a"]), percent(jv["b"]), percent(jv["diff"]), _ci_text(jv["ci"]))]
    rows += [
        (f"MAPE {path}", percent(n["mape_a"]), percent(n["mape_b"]), percent(n["diff"]), _ci_text(n["ci"]))
        for path, n in c["numeric"].items()
    ]
    rows += [
        (f"Exact match {field}", percent(n["a"]), percent(n["b"]), percent(n["diff"]), _ci_text(n["ci"]))
        for field, n in c["categorical"].items()
    ]
    examples = examples_with_drawings(ids=[r["id"] for r in c["largest_differences"]])
    differences = [
        {
            "id": r["id"],
            "example": examples.get(r["id"]),
            "score_a": percent(r["score_a"]),
            "score_b": percent(r["score_b"]),
            "diff": percent(r["diff"]),
        }
        for r in c["largest_differences"]
    ]
    return render_to_string(
        "admin/finetune/evals/_comparison.html",
        {"c": c, "headers": ["Field", "A", "B", "B − A", "95 % CI"], "rows": rows, "differences": differences},
    )


def lineage_html(run: EvalRun) -> str:
    return table_html(["", ""], lineage_lines(eval_run_lineage(run)))


def few_shot_facts_html(run: EvalRun) -> str:
    """k, the similarity rule, where the shots come from and the input the run sends (estimated, then measured)."""
    try:
        estimate = few_shot_run_estimate(eval_run=run)
    except Exception as exc:  # a version changed since: the facts still show, the estimate says why it is missing
        estimate = {"error": f"{type(exc).__name__}: {exc}"}
    return render_to_string(
        "admin/finetune/evals/_few_shot_facts.html",
        {
            "run": run,
            "config": run.few_shot,
            "estimate": estimate,
            "cost": usd(estimate.get("input_cost_usd")),
            "measured_cost": usd(run.cost_usd),
            "done": run.status == EvalRun.Status.DONE,
        },
    )


def serves_until_html(lifecycle: Lifecycle) -> str:
    """A model's shutdown date and the one lifecycle warning (curation's), for the registry and fallback lists."""
    date = f"{lifecycle.shutdown_date:%Y-%m-%d}" if lifecycle.shutdown_date else "no shutdown date known"
    warning = lifecycle_warning(lifecycle)
    return format_html('{} <span class="lifecycle-warning">⚠ {}</span>', date, warning) if warning else date


PAGE = "admin/finetune/evals/page.html"


def tool_page(request, model_admin, *, title: str, template: str = PAGE, **context):
    """A page of the eval screens (a form, a confirmation, a comparison) inside the admin's own layout."""
    return TemplateResponse(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "title": title, "opts": model_admin.model._meta, **context},
    )
