"""A dataset version's policy gates: rows, groups, tag shares, repeated targets, format, ground truth decided."""

from __future__ import annotations

from collections import Counter

from curation.models import Dataset, DatasetMember
from curation.services.dataset_checks import MemberFacts
from curation.services.dataset_split import tag_values

OPENAI_MIN_ROWS = 10


def _gate(name, passed, value, threshold, message):
    return {"name": name, "passed": bool(passed), "value": value, "threshold": threshold, "message": message}


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def dataset_gates(
    dataset: Dataset,
    facts: list[MemberFacts],
    tags_by_example: dict,
    groups: dict[int, str],
    *,
    ground_truth_waiting: int = 0,
) -> list[dict]:
    """Policy gates, each {name, passed, value, threshold, message}. `ground_truth_waiting`: examples whose
    ground truth moved under a reviewed target and wait for the reviewer's choice (keep or take)."""
    rows = len(facts)
    gates = []
    min_rows = max(dataset.min_rows or 0, OPENAI_MIN_ROWS)
    gates.append(
        _gate(
            "min_rows",
            rows >= min_rows,
            rows,
            min_rows,
            f"{rows} rows: " + ("at least" if rows >= min_rows else "below") + f" the minimum of {min_rows}",
        )
    )
    train_rows = sum(1 for f in facts if f.split == DatasetMember.Split.TRAIN)
    if train_rows < OPENAI_MIN_ROWS:
        gates.append(
            _gate(
                "min_train_rows",
                False,
                train_rows,
                OPENAI_MIN_ROWS,
                f"{train_rows} training rows: below OpenAI's minimum of {OPENAI_MIN_ROWS} (lower the validation "
                f"fraction or add examples)",
            )
        )
    n_groups = len(set(groups.values()))
    gates.append(
        _gate(
            "min_groups",
            n_groups >= dataset.min_groups,
            n_groups,
            dataset.min_groups,
            f"{n_groups} groups (parts): "
            + ("at least" if n_groups >= dataset.min_groups else "below")
            + f" the minimum of {dataset.min_groups}",
        )
    )
    for tag, limit in sorted((dataset.max_tag_share or {}).items()):
        counter = Counter(v for f in facts for v in set(tag_values((tags_by_example.get(f.example_id) or {}).get(tag))))
        value, count = counter.most_common(1)[0] if counter else ("", 0)
        share = count / rows if rows else 0.0
        ok = share <= float(limit)
        gates.append(
            _gate(
                f"max_tag_share:{tag}",
                ok,
                round(share, 4),
                float(limit),
                f"{tag}={value or '(none)'} is {_pct(share)} of rows: "
                + ("within" if ok else "above")
                + f" the maximum of {_pct(float(limit))}",
            )
        )
    targets = Counter(f.target.strip() for f in facts)
    duplicates = sum(count - 1 for count in targets.values() if count > 1)
    share = duplicates / rows if rows else 0.0
    ok = share <= dataset.max_duplicate_target_share
    gates.append(
        _gate(
            "max_duplicate_target_share",
            ok,
            round(share, 4),
            dataset.max_duplicate_target_share,
            f"{duplicates} rows repeat another row's target ({_pct(share)}): "
            + ("within" if ok else "above")
            + f" the maximum of {_pct(dataset.max_duplicate_target_share)}",
        )
    )
    prefixes = Counter(f.target.strip()[: dataset.prefix_chars] for f in facts)
    prefix, count = prefixes.most_common(1)[0] if prefixes else ("", 0)
    share = count / rows if rows else 0.0
    ok = share <= dataset.max_same_prefix_share
    gates.append(
        _gate(
            "max_same_prefix_share",
            ok,
            round(share, 4),
            dataset.max_same_prefix_share,
            f"{_pct(share)} of targets start with the same {dataset.prefix_chars} characters ({prefix[:30]!r}…): "
            + ("within" if ok else "above")
            + f" the maximum of {_pct(dataset.max_same_prefix_share)}",
        )
    )
    errors = sum(1 for f in facts if any(p["level"] == "error" for p in f.problems))
    gates.append(
        _gate(
            "format",
            errors == 0,
            errors,
            0,
            f"{errors} example(s) with format errors"
            + ("" if errors == 0 else ": fix them (see problems) and rebuild"),
        )
    )
    gates.append(
        _gate(
            "ground_truth_decided",
            ground_truth_waiting == 0,
            ground_truth_waiting,
            0,
            f"{ground_truth_waiting} example(s) whose ground truth changed wait for the reviewer's choice"
            + (
                ""
                if ground_truth_waiting == 0
                else ' (Examples, filter "ground truth changed"): keep or take the new ground truth, then rebuild'
            ),
        )
    )
    return gates
