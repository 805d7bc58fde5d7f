"""The dataset's selection and its train/validation split: deterministic (seeded group hash) and group-safe.

A part's examples, and a near-duplicate with its original, always land in the same split, so validation never
scores the model on a drawing it trained on.
"""

from __future__ import annotations

import hashlib

from curation.models import Dataset, DatasetMember, Example


def tag_values(value) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _matches_tags(tags: dict, tag_filters: dict) -> bool:
    for name, wanted in (tag_filters or {}).items():
        wanted = set(tag_values(wanted))
        if wanted and not wanted & set(tag_values((tags or {}).get(name))):
            return False
    return True


def dataset_examples(dataset: Dataset) -> list[Example]:
    """The examples the dataset's filters select, in id order. Examples a fine-tuning provider dropped or
    refused (`provider_refused`) are left out: sending them again would lose them again."""
    queryset = Example.objects.filter(
        task=dataset.task, status__in=dataset.statuses or [Example.Status.APPROVED], provider_refused=False
    )
    if dataset.min_quality is not None:
        queryset = queryset.filter(quality_score__gte=dataset.min_quality)
    if dataset.min_confidence is not None:
        queryset = queryset.filter(confidence__gte=dataset.min_confidence)
    fields = [
        "id",
        "messages",
        "target",
        "tags",
        "group_key",
        "near_duplicate_of_id",
        "drawing_id",
        "ground_truth_target",
    ]
    return [e for e in queryset.order_by("id").only(*fields) if _matches_tags(e.tags, dataset.tag_filters)]


def _own_group(example_id: int, group_key: str, tags: dict, split_group: str) -> str:
    if split_group and split_group != "group_key":
        values = tag_values((tags or {}).get(split_group))
        if values:
            return f"{split_group}={'|'.join(sorted(values))}"
    return group_key or f"example:{example_id}"


def split_groups(dataset: Dataset, examples: list[Example]) -> dict[int, str]:
    """Example id -> split group; a near-duplicate takes its original's group (following chains)."""
    info = {e.pk: (e.group_key, e.tags, e.near_duplicate_of_id) for e in examples}
    missing = {e.near_duplicate_of_id for e in examples if e.near_duplicate_of_id} - set(info)
    while missing:  # originals outside the selection still decide the group
        rows = Example.objects.filter(pk__in=missing).values_list("pk", "group_key", "tags", "near_duplicate_of_id")
        for pk, group_key, tags, original in rows:
            info[pk] = (group_key, tags, original)
        missing = {row[2] for row in info.values() if row[2]} - set(info)
        missing -= {pk for pk in missing if pk is None}

    def root(pk: int) -> int:
        seen = set()
        while info.get(pk, (None, None, None))[2] and pk not in seen:
            seen.add(pk)
            pk = info[pk][2]
        return pk

    groups = {}
    for example in examples:
        origin = root(example.pk)
        group_key, tags, _ = info.get(origin, (example.group_key, example.tags, None))
        groups[example.pk] = _own_group(origin, group_key, tags, dataset.split_group)
    return groups


def group_score(seed: int, group: str) -> float:
    """A stable number in [0, 1) per group: a group keeps its split as the dataset grows."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()
    return int(digest[:15], 16) / float(16**15)


def assign_splits(*, groups: dict[int, str], fraction: float, seed: int) -> dict[int, str]:
    """Example id -> "train" | "validation" by seeded group hash, never splitting a group.

    Train is never empty; with a validation fraction above 0 and two groups or more, validation is not
    empty either (the lowest-scoring group goes there).
    """
    scores = {group: group_score(seed, group) for group in set(groups.values())}
    validation = {group for group, score in scores.items() if score < fraction}
    if len(validation) == len(scores) and scores:
        validation.discard(max(scores, key=lambda g: (scores[g], g)))
    if not validation and fraction > 0 and len(scores) >= 2:
        validation.add(min(scores, key=lambda g: (scores[g], g)))
    return {
        pk: (DatasetMember.Split.VALIDATION if group in validation else DatasetMember.Split.TRAIN)
        for pk, group in groups.items()
    }
