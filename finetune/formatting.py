"""What the admin shows of stored JSON: an estimate's answer and live score, checkpoint metrics and the promotion
report as rows of text for table templates, and Markdown (the model card) as safe HTML. No ORM here.

Every cell is plain text: the templates escape it, so a model's answer or a reason with markup in it shows as
text. Markdown is rendered with raw HTML off (markdown-it-py escapes it) and unsafe link schemes refused.
"""

from __future__ import annotations

import json
from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from finetune.metrics import metric_rows, pct, pct_with_ci, usd

MISSING = "—"

# The fields of a technology plan a person reads, with their units; other fields keep their own names.
FIELD_LABELS = {
    "part_number": "Part number",
    "material": "Material",
    "machines": "Machines",
    "machine": "Machine",
    "operation": "Operation",
    "machine_time_min_per_piece": "Time per piece (min/pc)",
    "setup_min": "Setup (min)",
}
# An operation's fields first, in the schema's order; any others after them, by name.
OPERATION_COLUMNS = ("machine", "operation", "machine_time_min_per_piece", "setup_min")

# Checkpoint metrics by the names providers use (events carry the long ones, result files the short ones).
CHECKPOINT_COLUMNS = [
    ("Train loss", ("train_loss",), "loss"),
    ("Train accuracy", ("train_mean_token_accuracy", "train_accuracy"), "accuracy"),
    ("Valid loss", ("valid_loss",), "loss"),
    ("Valid accuracy", ("valid_mean_token_accuracy", "valid_accuracy"), "accuracy"),
    ("Full valid loss", ("full_valid_loss",), "loss"),
    ("Full valid accuracy", ("full_valid_mean_token_accuracy", "full_valid_accuracy"), "accuracy"),
]


def label(name: str) -> str:
    return FIELD_LABELS.get(name, name)


def path_label(path: str) -> str:
    """`operations[].setup_min` → "Setup (min)": a numeric path by the label of its last field."""
    return label(path.rsplit(".", 1)[-1].removesuffix("[]"))


def cell(value) -> str:
    """One value as a table cell's text: numbers as they are, lists of words joined, anything else as compact JSON."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --- an estimate -------------------------------------------------------------------------------
def answer_tables(output) -> dict:
    """An answer as a person reads it: {"text"} for a text task, else {"fields": [(label, text)], "operations":
    {"headers", "rows"}} with the operations (machine, operation, time per piece, setup) in their own table."""
    if output is None:
        return {}
    if not isinstance(output, dict):
        return {"text": cell(output)}
    operations = output.get("operations")
    ops_are_rows = isinstance(operations, list) and all(isinstance(o, dict) for o in operations)
    fields = [(label(k), cell(v)) for k, v in output.items() if not (k == "operations" and ops_are_rows)]
    tables = {"fields": fields}
    if ops_are_rows and operations:
        columns = [c for c in OPERATION_COLUMNS if any(c in o for o in operations)]
        columns += sorted({k for o in operations for k in o} - set(columns))
        tables["operations"] = {
            "headers": [label(c) for c in columns],
            "rows": [[cell(o.get(c)) for c in columns] for o in operations],
        }
    return tables


def live_score_rows(live_errors: dict, key_fields: list[str]) -> dict:
    """The live score per machine and operation: {"headers", "rows"}, one row per value scored (what was measured,
    what was estimated, the absolute percentage error)."""
    headers = ["Value", *(label(k) for k in key_fields), "Measured", "Estimated", "APE"]
    rows = []
    for path, errors in sorted((live_errors or {}).items()):
        for error in errors:
            key = list(error.get("key") or [])
            key += [""] * (len(key_fields) - len(key))
            rows.append(
                [
                    path_label(path),
                    *(cell(k) for k in key[: len(key_fields)]),
                    cell(error.get("actual")),
                    "not given" if error.get("predicted") is None else cell(error.get("predicted")),
                    pct(error.get("ape"), missing=MISSING),
                ]
            )
    return {"headers": headers, "rows": rows}


def estimate_live_json(estimate) -> dict | None:
    """The live score in the estimate's JSON download (None until production records scored it)."""
    if not estimate.scored_at:
        return None
    return {
        "ape": estimate.live_score,
        "primary_ape_sum": estimate.live_ape_sum,
        "primary_ape_n": estimate.live_ape_n,
        "errors": estimate.live_errors,
        "scored_against_ground_truth_of": (
            estimate.scored_ground_truth_at.isoformat() if estimate.scored_ground_truth_at else None
        ),
        "scored_at": estimate.scored_at.isoformat(),
    }


# --- checkpoints -------------------------------------------------------------------------------
def _metric_text(value, kind: str) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return cell(value)
    return pct(value) if kind == "accuracy" else f"{value:.4f}"


def checkpoint_table(checkpoints) -> dict:
    """Checkpoints as {"headers", "rows"}: step, model, then each metric any checkpoint has (losses to 4 places,
    token accuracies in %), and whatever else the provider sent in an "Other" column."""
    known = {name for _, names, _ in CHECKPOINT_COLUMNS for name in names} | {"step"}
    columns = [col for col in CHECKPOINT_COLUMNS if any(n in (c.metrics or {}) for c in checkpoints for n in col[1])]
    other = any(set(c.metrics or {}) - known for c in checkpoints)
    rows = []
    for checkpoint in checkpoints:
        metrics = checkpoint.metrics or {}
        row = [cell(checkpoint.step), cell(checkpoint.fine_tuned_model_checkpoint)]
        for _, names, kind in columns:
            value = next((metrics[n] for n in names if n in metrics), None)
            row.append(_metric_text(value, kind))
        if other:
            row.append(", ".join(f"{k} {cell(v)}" for k, v in sorted(metrics.items()) if k not in known) or MISSING)
        rows.append(row)
    headers = ["Step", "Model checkpoint", *(col[0] for col in columns)] + (["Other"] if other else [])
    return {"headers": headers, "rows": rows}


def checkpoints_json(run, checkpoints) -> dict:
    return {
        "run": run.pk,
        "fine_tuned_model": run.fine_tuned_model or None,
        "simulated": run.is_simulated,
        "checkpoints": [
            {
                "step": c.step,
                "fine_tuned_model_checkpoint": c.fine_tuned_model_checkpoint,
                "remote_id": c.remote_id,
                "created_at": c.created_at_remote.isoformat() if c.created_at_remote else None,
                "metrics": c.metrics or {},
            }
            for c in checkpoints
        ],
    }


# --- the promotion report and the model card ---------------------------------------------------
def _rounded(value):
    """A policy figure without float noise (0.19999999999999993 → 0.2)."""
    return round(value, 6) if isinstance(value, float) else value


def report_tables(report: dict) -> dict:
    """The promotion report's facts, policy checks, metrics and comparison as rows of text."""
    if not report:
        return {}
    task, model, run = report.get("task") or {}, report.get("model") or {}, report.get("eval_run") or {}
    dataset, previous = report.get("dataset_version") or {}, report.get("previous_active")
    promoted_at = report.get("promoted_at") or MISSING
    facts = [
        ("Model", f"{model.get('name', MISSING)} ({model.get('kind', MISSING)}, tag {model.get('tag', MISSING)})"),
        (
            "Task",
            f"{task.get('slug', MISSING)} (schema v{task.get('schema_version')}, prompt v{task.get('prompt_version')})",
        ),
        ("Promoted", f"{promoted_at[:19].replace('T', ' ')} UTC by {report.get('promoted_by') or MISSING}"),
        ("Dataset version", f"{dataset.get('name', MISSING)} (hash {dataset.get('content_hash', MISSING)})"),
        (
            "Eval run",
            f"{run.get('id', MISSING)}: {run.get('n', MISSING)} examples of the {run.get('split', MISSING)} split, "
            f"prompt {run.get('prompt_kind', MISSING)}, cost {usd(run.get('cost_usd'))}",
        ),
        ("Policy", "passed" if report.get("policy_passed") else "failed"),
    ]
    if report.get("override_reason"):
        facts.append(("Override reason", report["override_reason"]))
    facts.append(("Previously active", f"{previous['model']} (version {previous['id']})" if previous else MISSING))
    checks = [
        [
            check.get("name", ""),
            "PASS" if check.get("passed") else "FAIL",
            cell(_rounded(check.get("value"))),
            cell(_rounded(check.get("threshold"))),
            check.get("message", ""),
        ]
        for check in report.get("checks") or []
    ]
    metrics = [
        [f"{name} {subject}".strip(), pct_with_ci(block, missing=MISSING), cell(n)]
        for name, subject, block, n in metric_rows(report.get("metrics") or {})
    ]
    comparison = report.get("comparison")
    compared = None
    if comparison:
        compared = {
            "summary": (
                f"Against {comparison['a']['model']} (eval run {comparison['a']['id']}) on "
                f"{comparison['n_shared']} shared examples: {comparison['b_wins']} better, "
                f"{comparison['b_losses']} worse, {comparison['ties']} ties."
            ),
            "rows": [
                [
                    path,
                    pct(block.get("mape_a"), missing=MISSING),
                    pct(block.get("mape_b"), missing=MISSING),
                    pct(block.get("diff"), missing=MISSING),
                    f"{pct(block['ci'][0])} to {pct(block['ci'][1])}" if block.get("ci") else MISSING,
                ]
                for path, block in sorted((comparison.get("numeric") or {}).items())
            ],
        }
    return {
        "facts": facts,
        "checks": {"headers": ["Check", "Result", "Value", "Threshold", "Why"], "rows": checks},
        "metrics": {"headers": ["Metric", "Value (95 % CI)", "n"], "rows": metrics},
        "comparison": compared,
        "comparison_headers": ["MAPE of", "Previous", "This model", "Difference", "95 % CI"],
    }


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # CommonMark with tables (the card has one); "html": False makes raw HTML in the text show as text.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> SafeString:
    """Markdown as HTML safe to put in a page: markdown-it escapes raw HTML and refuses javascript:/data: links."""
    return mark_safe(_markdown().render(text or ""))  # noqa: S308 - markdown-it escaped every text and attribute
