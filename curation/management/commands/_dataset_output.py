"""Shared printing of a dataset version for the dataset commands (gates, problems, tokens, cost)."""


def write_version_report(command, version) -> None:
    out = command.stdout
    counts = version.counts
    out.write(f"{version} (id {version.pk}): {counts.get('train', 0)} train / {counts.get('validation', 0)} validation rows, "
              f"{counts.get('groups', 0)} groups, hash {version.content_hash[:12]}")
    for gate in version.gates:
        line = f"  {'PASS' if gate['passed'] else 'FAIL'} {gate['name']}: {gate['message']}"
        out.write(command.style.SUCCESS(line) if gate["passed"] else command.style.ERROR(line))
    for problem in version.problems[:50]:
        out.write(f"  {problem.get('level', 'error')}: example {problem['example_id']} ({problem['split']} line {problem['line']}): "
                  f"{problem['message']}")
    if len(version.problems) > 50:
        out.write(f"  ... and {len(version.problems) - 50} more problems")
    tokens = version.tokens or {}
    for split in ("train", "validation"):
        t = tokens.get(split) or {}
        out.write(f"  tokens {split}: {t.get('total', 0):,} ({t.get('text', 0):,} text + {t.get('image', 0):,} image)")
    for name, cost in (version.cost_estimates or {}).items():
        dates = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cost.items() if k.endswith("_date") and v)
        note = f" — {cost['note']}" if cost.get("note") else ""
        usd = f"${cost['usd']}" if cost.get("usd") is not None else "unknown (no published price)"
        out.write(f"  cost {name}: {usd} ({cost['train_tokens']:,} tokens × {cost['epochs']} epochs"
                  f"{', ' + dates if dates else ''}){note}")
    verdict = "ready" if version.gates_passed else "NOT ready"
    out.write(command.style.SUCCESS(verdict) if version.gates_passed else command.style.ERROR(verdict))
