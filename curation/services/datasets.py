"""Dataset builds: members chosen and split, checked, counted and frozen into a DatasetVersion with a content hash.

The split lives in `dataset_split`, the per-member checks in `dataset_checks`, the gates in `dataset_gates` and
the training cost in `dataset_costs`; this module puts them together and stores the result.

A version never changes after it is built (members are snapshots); rebuilding after examples change
makes a new version, and rebuilding with nothing changed returns the latest version (same hash).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict

from django.db import transaction
from django.db.models import Max

from curation.models import Dataset, DatasetMember, DatasetVersion, Example
from curation.openai_format import page_ref_ids
from curation.services.dataset_checks import (
    BULK,
    DEFAULT_ENCODING,
    MemberFacts,
    ModelSpec,
    PageChecks,
    members_check,
    model_specs_active,
    snapshot_messages,
)
from curation.services.dataset_costs import training_cost_estimate
from curation.services.dataset_gates import dataset_gates
from curation.services.dataset_split import assign_splits, dataset_examples, split_groups, tag_values


class DatasetBuildError(Exception):
    """A build that cannot produce a version (e.g. no example matches); the message says why."""


# --- the build --------------------------------------------------------------------------------


def _summaries(dataset: Dataset, facts: list[MemberFacts], models: list[ModelSpec], tags_by_example, groups):
    counts = {"train": 0, "validation": 0, "total": len(facts)}
    split_groups_seen = defaultdict(set)
    tag_counts: dict = {"train": defaultdict(Counter), "validation": defaultdict(Counter)}
    tokens = {s: {"text": 0, "image": 0, "total": 0} for s in ("train", "validation")}
    by_model = {m.name: {"train": 0, "validation": 0} for m in models}
    for f in facts:
        counts[f.split] += 1
        split_groups_seen[f.split].add(groups[f.example_id])
        for tag, value in (tags_by_example.get(f.example_id) or {}).items():
            for v in tag_values(value):
                tag_counts[f.split][tag][v] += 1
        tokens[f.split]["text"] += f.text_tokens
        tokens[f.split]["image"] += f.image_tokens
        tokens[f.split]["total"] += f.text_tokens + f.image_tokens
        for name, total in f.tokens_by_model.items():
            if name in by_model:
                by_model[name][f.split] += total
    counts["groups"] = len(set(groups.values()))
    counts["train_groups"] = len(split_groups_seen["train"])
    counts["validation_groups"] = len(split_groups_seen["validation"])
    tokens["by_model"] = by_model
    tokens["encoding"], tokens["image_scheme"] = DEFAULT_ENCODING, "tiles (gpt-4o / gpt-4.1)"
    has_images = any(f.image_tokens for f in facts)
    costs = {}
    for m in models:
        cost = training_cost_estimate(
            model=m.name,
            price_per_1m=m.price,
            supports_vision=m.supports_vision,
            train_tokens=by_model[m.name]["train"],
            epochs=dataset.epochs,
            has_images=has_images,
        )
        costs[m.name] = {
            # An unknown price (None) stays unknown: never $0.
            "usd": str(cost.usd) if cost.usd is not None else None,
            "train_tokens": cost.train_tokens,
            "epochs": cost.epochs,
            "price_per_1m": str(cost.price_per_1m) if cost.price_per_1m is not None else None,
            "jobs_end_date": m.jobs_end_date.isoformat() if m.jobs_end_date else None,
            "shutdown_date": m.shutdown_date.isoformat() if m.shutdown_date else None,
            "note": cost.problem,
        }
    tag_counts = {split: {tag: dict(c) for tag, c in tags.items()} for split, tags in tag_counts.items()}
    return counts, tag_counts, tokens, costs


def _problems(facts: list[MemberFacts]) -> list[dict]:
    problems, lines = [], Counter()
    for f in facts:
        lines[f.split] += 1
        for p in f.problems:
            problems.append({"example_id": f.example_id, "split": f.split, "line": lines[f.split], **p})
    return problems


def _content_hash(dataset: Dataset, facts: list[MemberFacts]) -> str:
    task = dataset.task
    digest = hashlib.sha256()
    header = {
        "task": task.slug,
        "prompt_version": task.prompt_version,
        "schema_version": task.schema_version,
        "system_prompt": task.system_prompt,
        "compact_prompt": task.compact_prompt,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for f in facts:  # messages carry the image sha256s, so image bytes are part of the hash
        digest.update(b"\n" + json.dumps([f.split, f.messages, f.target], sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def dataset_build(*, dataset: Dataset, user=None, progress=None) -> DatasetVersion:
    """Build (or find) the version for the dataset's current examples. Raises DatasetBuildError.

    `progress(stage, done, total)`, when given, hears after each batch: the page images are read first
    ("reading page images"), then every line is checked and counted ("checking lines").
    """
    examples = dataset_examples(dataset)
    if not examples:
        raise DatasetBuildError(
            f"No example of task {dataset.task.slug} matches the dataset {dataset.name!r} "
            f"(statuses {dataset.statuses or ['approved']}, filters {dataset.tag_filters or 'none'}): approve "
            f"examples first."
        )
    groups = split_groups(dataset, examples)
    splits = assign_splits(groups=groups, fraction=dataset.validation_fraction, seed=dataset.split_seed)
    pages = PageChecks()
    for start in range(0, len(examples), BULK):  # in batches, so a long read reports how far it got
        pages.prefetch(pid for e in examples[start : start + BULK] for pid in page_ref_ids(e.messages))
        if progress is not None:
            progress("reading page images", min(start + BULK, len(examples)), len(examples))
    ordered = sorted(examples, key=lambda e: (splits[e.pk], e.pk))  # file order: train then validation, by id
    rows = [(e.pk, splits[e.pk], snapshot_messages(e.messages, pages), e.target) for e in ordered]
    models = model_specs_active()
    facts = members_check(
        dataset,
        rows,
        pages,
        models,
        progress=None if progress is None else lambda done: progress("checking lines", done, len(rows)),
    )
    tags_by_example = {e.pk: e.tags for e in examples}
    gates = dataset_gates(
        dataset, facts, tags_by_example, groups, ground_truth_waiting=sum(1 for e in examples if e.ground_truth_target)
    )
    counts, tag_counts, tokens, costs = _summaries(dataset, facts, models, tags_by_example, groups)
    content_hash = _content_hash(dataset, facts)

    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # one build number at a time
        latest = dataset.versions.order_by("-number").first()
        if latest and latest.content_hash == content_hash and latest.gates == gates:
            return latest  # nothing changed: the same frozen version
        number = (dataset.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=number,
            content_hash=content_hash,
            prompt_version=dataset.task.prompt_version,
            schema_version=dataset.task.schema_version,
            counts=counts,
            tag_counts=tag_counts,
            tokens=tokens,
            cost_estimates=costs,
            gates=gates,
            problems=_problems(facts),
            gates_passed=all(g["passed"] for g in gates),
            created_by=user,
        )
        positions = Counter()
        members = []
        for f in facts:
            positions[f.split] += 1
            members.append(
                DatasetMember(
                    version=version,
                    example_id=f.example_id,
                    split=f.split,
                    position=positions[f.split],
                    messages=f.messages,
                    target=f.target,
                    text_tokens=f.text_tokens,
                    image_tokens=f.image_tokens,
                )
            )
        DatasetMember.objects.bulk_create(members, batch_size=BULK)
    return version


def dataset_version_validate(*, version: DatasetVersion) -> DatasetVersion:
    """Re-run format checks, tokens and gates on the frozen members (e.g. after a page file was damaged).

    Members never change; only the check results (gates, problems, tokens, cost) are refreshed.
    """
    dataset = version.dataset
    members = version.members.order_by("split", "position").values_list("example_id", "split", "messages", "target")
    rows = [tuple(m) for m in members.iterator(chunk_size=BULK)]
    pages, models = PageChecks(), model_specs_active()
    facts = members_check(dataset, rows, pages, models)
    ids = [r[0] for r in rows]
    examples = list(
        Example.objects.filter(pk__in=ids).only(
            "id", "group_key", "tags", "near_duplicate_of_id", "ground_truth_target"
        )
    )
    tags_by_example = {e.pk: e.tags for e in examples}
    groups = split_groups(dataset, examples)
    version.gates = dataset_gates(
        dataset, facts, tags_by_example, groups, ground_truth_waiting=sum(1 for e in examples if e.ground_truth_target)
    )
    version.counts, version.tag_counts, version.tokens, version.cost_estimates = _summaries(
        dataset, facts, models, tags_by_example, groups
    )
    version.problems = _problems(facts)
    version.gates_passed = all(g["passed"] for g in version.gates)
    version.save(
        update_fields=["gates", "counts", "tag_counts", "tokens", "cost_estimates", "problems", "gates_passed"]
    )
    return version


def dataset_resolve(*, ref: str) -> Dataset:
    """A dataset by id or name (for the command line)."""
    dataset = Dataset.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    dataset = dataset or Dataset.objects.filter(name=ref).first()
    if dataset is None:
        raise DatasetBuildError(f"No dataset with id or name {ref!r}.")
    return dataset
