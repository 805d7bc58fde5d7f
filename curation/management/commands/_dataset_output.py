"""Shared printing of a dataset version for the dataset commands (gates, problems, tokens, cost)."""

from curation.services.base_models import base_model_date_warning
from curation.services.dataset_costs import dataset_version_training_costs


def write_version_report(command, version) -> None:
    out = command.stdout
    counts = version.counts
    out.write(
        f"{version} (id {version.pk}): {counts.get('train', 0)} train / {counts.get('validation', 0)} validation rows, "
        f"{counts.get('groups', 0)} groups, hash {version.content_hash[:12]}"
    )
    for gate in version.gates:
        line = f"  {'PASS' if gate['passed'] else 'FAIL'} {gate['name']}: {gate['message']}"
        out.write(command.style.SUCCESS(line) if gate["passed"] else command.style.ERROR(line))
    for problem in version.problems[:50]:
        out.write(
            f"  {problem.get('level', 'error')}: example {problem['example_id']} ({problem['split']} line "
            f"{problem['line']}): "
            f"{problem['message']}"
        )
    if len(version.problems) > 50:
        out.write(f"  ... and {len(version.problems) - 50} more problems")
    tokens = version.tokens or {}
    for split in ("train", "validation"):
        t = tokens.get(split) or {}
        out.write(f"  tokens {split}: {t.get('total', 0):,} ({t.get('text', 0):,} text + {t.get('image', 0):,} image)")
    for model, cost in dataset_version_training_costs(version=version):
        dates = ", ".join(
            f"{label} {date:%Y-%m-%d}"
            for label, date in (("jobs end date", model.jobs_end_date), ("shutdown date", model.shutdown_date))
            if date
        )
        note = f" — {cost.problem}" if cost.problem else ""
        warning = base_model_date_warning(model)
        note += f" — ⚠ {warning}" if warning else ""
        usd = f"${cost.usd}" if cost.usd is not None else "unknown (no published price)"
        out.write(
            f"  cost {model.name}: {usd} ({cost.train_tokens:,} tokens × {cost.epochs} epochs"
            f"{', ' + dates if dates else ''}){note}"
        )
    verdict = "ready" if version.gates_passed else "NOT ready"
    out.write(command.style.SUCCESS(verdict) if version.gates_passed else command.style.ERROR(verdict))
