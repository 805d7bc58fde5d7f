"""The charts of a dataset version's page: split sizes, tag distribution, target distribution.

A version belongs to curation, but its targets are read with finetune's value reader (`metrics.numeric_values`,
the same one the evaluation scores them with), so this module lives in the project package, as the dashboard.
Reads only: the counts the build froze (`counts`, `tag_counts`) and the members' target snapshots.
"""

from __future__ import annotations

import json

from curation.models import DatasetMember, DatasetVersion
from finetune.charts import field_label
from finetune.metrics import numeric_values
from gestima.charts import chart_spec

SPLITS = ("train", "validation")
# Upper edges of the target bins (the field's unit, minutes for machine times); the last bin is open.
TARGET_EDGES = (1, 2, 5, 10, 20, 50, 100)


def dataset_version_split_chart(*, version: DatasetVersion) -> dict:
    """Examples and groups (drawings of one part) per split, as the build counted them."""
    counts = version.counts or {}
    return chart_spec(
        title="Split sizes",
        kind="bar",
        integer=True,
        totals=False,
        x_label="Split",
        y_label="Examples / groups",
        unit="",
        labels=list(SPLITS),
        series=[
            {"name": "examples", "values": [counts.get(s, 0) for s in SPLITS]},
            {"name": "groups", "values": [counts.get(f"{s}_groups", 0) for s in SPLITS]},
        ],
    )


def dataset_version_tag_chart(*, version: DatasetVersion) -> dict:
    """Examples per tag value, train and validation stacked (an example with two machines counts in both)."""
    tag_counts = version.tag_counts or {}
    labels = sorted(
        {
            f"{tag}: {value}"
            for split in SPLITS
            for tag, values in (tag_counts.get(split) or {}).items()
            for value in values
        }
    )

    def count(split: str, label: str) -> int:
        tag, value = label.split(": ", 1)
        return ((tag_counts.get(split) or {}).get(tag) or {}).get(value, 0)

    return chart_spec(
        title="Tags: examples per tag value",
        kind="bar",
        stacked=True,
        integer=True,
        x_label="Tag: value",
        y_label="Examples",
        unit="examples",
        labels=labels,
        series=[{"name": split, "values": [count(split, label) for label in labels]} for split in SPLITS]
        if labels
        else [],
    )


def dataset_version_target_chart(*, version: DatasetVersion) -> dict:
    """How the targets of the task's first numeric field spread (time per piece), one series per machine (the
    first key field): counts per band, both splits."""
    spec = version.dataset.task.metric_spec or {}
    path = (spec.get("numeric") or [None])[0]
    key_fields = spec.get("key", [])
    words, unit = field_label(path or "")
    lows = (0, *TARGET_EDGES)
    labels = [f"{lo}–{hi} {unit}".strip() for lo, hi in zip(lows, TARGET_EDGES)] + [
        f"≥ {TARGET_EDGES[-1]} {unit}".strip()
    ]
    per_key: dict[str, list[int]] = {}
    for text in DatasetMember.objects.filter(version=version).values_list("target", flat=True) if path else []:
        try:
            target = json.loads(text)
        except ValueError:
            continue
        for key, value in numeric_values(target, path, key_fields).items():
            name = (key[0] if key else "all") or "(no machine)"
            band = next((i for i, hi in enumerate(TARGET_EDGES) if value < hi), len(TARGET_EDGES))
            per_key.setdefault(name, [0] * len(labels))[band] += 1
    return chart_spec(
        title=f"Targets: {words or 'numeric field'} by {key_fields[0] if key_fields else 'value'}",
        kind="bar",
        integer=True,
        x_label=f"{words.capitalize()} ({unit})" if unit else words.capitalize(),
        y_label="Target values",
        unit="values",
        labels=labels,
        series=[{"name": name, "values": values} for name, values in sorted(per_key.items())],
    )


def dataset_version_charts(*, version: DatasetVersion) -> list[tuple[str, dict]]:
    """[(figure id, spec)] of the version page (no target chart for a task without a numeric field)."""
    charts = [
        ("version-split-chart", dataset_version_split_chart(version=version)),
        ("version-tag-chart", dataset_version_tag_chart(version=version)),
    ]
    if (version.dataset.task.metric_spec or {}).get("numeric"):
        charts.append(("version-target-chart", dataset_version_target_chart(version=version)))
    return charts
