"""The promotion report (a dict kept on the `ModelVersion` row) and the model card (Markdown) drawn from it.

Written once, when `finetune.services.promotion.model_version_promote` makes a version active.
"""

from __future__ import annotations

from django.utils import timezone

from finetune.metrics import metric_rows, pct, pct_with_ci, usd
from finetune.models import ModelKind, ModelVersion
from finetune.selectors import eval_run_lineage, lineage_lines


def promotion_report(*, version: ModelVersion, checks: list[dict], comparison: dict | None, previous) -> dict:
    """What was promoted, on which evidence and by whom: kept on the version row, the model card is drawn from it."""
    from finetune.services.promotion import provider_tag  # promotion imports this module

    run = version.eval_run
    dv = run.dataset_version
    lineage = eval_run_lineage(run)
    metrics = dict(run.metrics or {})
    made_by = lineage["training_run"] if lineage["role"] == "fine_tuned" else None
    return {
        "task": {
            "slug": version.task.slug,
            "schema_version": version.task.schema_version,
            "prompt_version": version.task.prompt_version,
        },
        "model": {
            "name": version.model_name,
            "kind": version.kind,
            "provider": version.provider,
            "tag": provider_tag(provider=version.provider, kind=version.kind),
        },
        "training_run": (
            {
                "id": made_by["id"],
                "base_model": lineage["base_model"],
                "job_id": made_by["job_id"],
                "hyperparameters": lineage["hyperparameters"],
                "trained_on": lineage["trained_on"],
                "checkpoint": lineage["checkpoint"],
            }
            if made_by
            else None
        ),
        "lineage": lineage,
        "eval_run": {
            "id": run.pk,
            "split": run.split,
            "prompt_kind": run.prompt_kind,
            "prompt_text": run.prompt_text,
            "n": run.total,
            "cost_usd": None if run.cost_usd is None else str(run.cost_usd),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "dataset_version": {"id": dv.pk, "name": str(dv), "content_hash": dv.content_hash},
        "policy": version.task.promotion_policy,
        "checks": checks,
        "policy_passed": version.policy_passed,
        "override_reason": version.override_reason,
        "previous_active": ({"id": previous.pk, "model": previous.model_name} if previous else None),
        "comparison": comparison,
        "metrics": {k: v for k, v in metrics.items() if k != "worst"},
        "promoted_by": getattr(version.promoted_by, "username", ""),
        "promoted_at": (version.promoted_at or timezone.now()).isoformat(),
    }


def model_card_render(*, version: ModelVersion) -> str:
    """The model card (Markdown) from the report: what a person needs before trusting the model."""
    report = version.report
    metrics = report["metrics"]
    lines = [
        f"# Model card: {version.model_name}",
        "",
        f"- Task: `{report['task']['slug']}` (schema v{report['task']['schema_version']}, prompt "
        f"v{report['task']['prompt_version']})",
        f"- Kind: {version.get_kind_display()}; provider tag `{report['model']['tag']}`",
        f"- Promoted: {report['promoted_at'][:19].replace('T', ' ')} UTC by {report['promoted_by'] or '—'}",
        f"- Dataset version: {report['dataset_version']['name']} (hash "
        f"`{report['dataset_version']['content_hash']}`), split `{report['eval_run']['split']}`",
        f"- Eval run: {report['eval_run']['id']}, {report['eval_run']['n']} examples, prompt "
        f"`{report['eval_run']['prompt_kind']}`, cost {usd(report['eval_run']['cost_usd'])}",
    ]
    # OpenAI-compatible endpoint and few-shot models: where the model is asked and what it is shown.
    if version.endpoint_id:
        endpoint = version.endpoint
        lines.append(
            f"- Endpoint: `{endpoint.name}` at {endpoint.base_url} (model `{endpoint.model_name}`, key from "
            f"the environment variable `{endpoint.api_key_env}`)"
        )
    if version.few_shot:
        lines.append(
            f"- Few-shot: {version.few_shot['k']} reviewed examples before each question, from the "
            f"{version.few_shot['source_split']} split of dataset version {version.few_shot['dataset_version']} "
            f"(rule `{version.few_shot['rule']}`)"
        )
    tr = report["training_run"]
    lineage = report.get("lineage") or {}
    if tr:
        lines.append(f"- Base model: {tr['base_model']}; training run {tr['id']} (job `{tr['job_id'] or '—'}`)")
        hp = ", ".join(f"{k}={v}" for k, v in (tr["hyperparameters"] or {}).items()) or "provider defaults"
        lines.append(f"- Hyperparameters: {hp}")
        trained = tr.get("trained_on") or {}
        lines.append(f"- Trained on: {trained.get('name', '—')} (hash `{trained.get('content_hash', '—')}`)")
        checkpoint = tr.get("checkpoint")
        lines.append(
            f"- Checkpoint: {checkpoint['model']} (step {checkpoint['step']})"
            if checkpoint
            else "- Checkpoint: the run's final model"
        )
    else:
        lines += [
            f"- {label}: {text}" for label, text in lineage_lines(lineage) if label in ("Base model", "Baseline of")
        ] or [
            "- Base model: "
            + (version.model_name if version.kind == ModelKind.BASE else "unknown (no training run linked)")
        ]
    lines += [
        "",
        "## Metrics (bootstrap 95 % confidence intervals over examples)",
        "",
        "| Metric | Value |",
        "|---|---|",
    ]
    lines += [
        f"| {name}{f' `{subject}`' if subject else ''} | {pct_with_ci(block)} |"
        for name, subject, block, _ in metric_rows(metrics)
    ]
    lines += ["", "## Promotion policy", ""]
    for check in report["checks"]:
        lines.append(f"- {'PASS' if check['passed'] else 'FAIL'} `{check['name']}`: {check['message']}")
    if report["override_reason"]:
        lines.append(f"- **Overridden**: {report['override_reason']}")
    comparison = report["comparison"]
    lines += ["", "## Comparison with the previously active model", ""]
    if comparison:
        lines.append(
            f"Against {comparison['a']['model']} (eval run {comparison['a']['id']}) on {comparison['n_shared']} "
            f"shared examples: "
            f"{comparison['b_wins']} better, {comparison['b_losses']} worse, {comparison['ties']} ties."
        )
        for path, block in comparison["numeric"].items():
            if block["diff"] is not None and block["ci"]:
                lines.append(
                    f"- MAPE `{path}`: {pct(block['mape_a'])} → {pct(block['mape_b'])} "
                    f"(difference {pct(block['diff'])}, 95 % CI {pct(block['ci'][0])} to {pct(block['ci'][1])})"
                )
    else:
        lines.append("None (first model of the task, or not compared).")
    lines += ["", "## Known limits", ""]
    limits = []
    for tag, groups in (metrics.get("by_tag") or {}).items():
        small = [value for value, block in groups.items() if block.get("n", 0) < 5]
        if small:
            limits.append(f"Few examples for {tag} = {', '.join(small[:8])}: their numbers are not reliable.")
    errors = metrics.get("error_counts") or {}
    if errors:
        limits.append("Errors on the evaluation set: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) + ".")
    limits.append(
        f"Evaluated on {report['eval_run']['n']} examples of one dataset version; drawings unlike those (other "
        "materials, machines, scans) may do worse. Times are estimates to be checked by a planner."
    )
    lines += [f"- {limit}" for limit in limits]
    return "\n".join(lines) + "\n"
