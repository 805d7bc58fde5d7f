"""Dataset builds: a frozen DatasetVersion with a group-safe split, content hash, tokens, cost, gates, format checks.

A version never changes after it is built (members are snapshots); rebuilding after examples change
makes a new version, and rebuilding with nothing changed returns the latest version (same hash).
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.db.models import Max

from curation.models import BaseModel, Dataset, DatasetMember, DatasetVersion, DrawingPage, Example
from curation.openai_format import (
    ImageProblem,
    build_line,
    image_inspect,
    iter_image_parts,
    page_ref_ids,
    part_page_id,
    validate_line,
)
from curation.services.base_models import base_models_seed
from curation.services.page_images import ExportError, PageImages, page_fingerprint, page_read
from curation.services.tasks import TargetInvalid, target_validate
from curation.tokens import ImageScheme, image_tokens, messages_text_tokens, training_cost

OPENAI_MIN_ROWS = 10
DEFAULT_ENCODING = "o200k_base"
DEFAULT_SCHEME = ImageScheme()  # gpt-4o / gpt-4.1 tiles: the figures stored per member
_BULK = 500


class DatasetBuildError(Exception):
    """A build that cannot produce a version (e.g. no example matches); the message says why."""


# --- selection and split ----------------------------------------------------------------------

def _tag_values(value) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _matches_tags(tags: dict, tag_filters: dict) -> bool:
    for name, wanted in (tag_filters or {}).items():
        wanted = set(_tag_values(wanted))
        if wanted and not wanted & set(_tag_values((tags or {}).get(name))):
            return False
    return True


def dataset_examples(dataset: Dataset) -> list[Example]:
    """The examples the dataset's filters select, in id order. Examples a fine-tuning provider dropped or
    refused (`provider_refused`) are left out: sending them again would lose them again."""
    queryset = Example.objects.filter(task=dataset.task, status__in=dataset.statuses or [Example.Status.APPROVED],
                                      provider_refused=False)
    if dataset.min_quality is not None:
        queryset = queryset.filter(quality_score__gte=dataset.min_quality)
    if dataset.min_confidence is not None:
        queryset = queryset.filter(confidence__gte=dataset.min_confidence)
    fields = ["id", "messages", "target", "tags", "group_key", "near_duplicate_of_id", "drawing_id", "ground_truth_target"]
    return [e for e in queryset.order_by("id").only(*fields) if _matches_tags(e.tags, dataset.tag_filters)]


def _own_group(example_id: int, group_key: str, tags: dict, split_group: str) -> str:
    if split_group and split_group != "group_key":
        values = _tag_values((tags or {}).get(split_group))
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
    return {pk: (DatasetMember.Split.VALIDATION if group in validation else DatasetMember.Split.TRAIN)
            for pk, group in groups.items()}


# --- images, tokens, checks -------------------------------------------------------------------

@dataclass
class _PageCheck:
    sha256: str = ""
    crc32: int = 0
    bytes: int = 0
    mtime_ns: int | None = None
    width: int = 0
    height: int = 0
    problem: str = ""


class _Pages:
    """Reads each page image once (the one page loader): its fingerprint, size and OpenAI's image checks."""

    def __init__(self):
        self.cache: dict[int, _PageCheck] = {}

    def prefetch(self, page_ids):
        wanted = set(page_ids) - set(self.cache)
        for page in PageImages(wanted).pages.values():
            self.cache[page.pk] = self._check(page)
        for page_id in wanted - set(self.cache):
            self.cache[page_id] = _PageCheck(problem=f"page {page_id} no longer exists")

    @staticmethod
    def _check(page: DrawingPage) -> _PageCheck:
        try:
            data = page_read(page)
        except ExportError as exc:
            return _PageCheck(problem=str(exc))
        fingerprint = page_fingerprint(page, data)
        check = _PageCheck(sha256=fingerprint["sha256"], crc32=fingerprint["crc32"], bytes=fingerprint["bytes"],
                           mtime_ns=fingerprint.get("mtime_ns"))
        try:
            info = image_inspect(data)
            check.width, check.height = info.width, info.height
        except ImageProblem as exc:
            check.problem = f"page {page.pk}: {exc}"
        return check

    def get(self, page_id: int) -> _PageCheck:
        if page_id not in self.cache:
            self.prefetch([page_id])
        return self.cache[page_id]


def _snapshot_messages(messages: list, pages: _Pages) -> list:
    """A deep copy where each page image part carries the fingerprint (sha256, crc32, size) of the checked bytes."""
    snapshot = json.loads(json.dumps(messages))
    for _, part in iter_image_parts(snapshot):
        page_id = part_page_id(part)
        if page_id is not None:
            check = pages.get(page_id)
            part.update(sha256=check.sha256, crc32=check.crc32, bytes=check.bytes)
            if check.mtime_ns is not None:
                part["mtime_ns"] = check.mtime_ns
    return snapshot


@dataclass
class _Model:
    name: str
    encoding: str
    scheme: ImageScheme
    price: object
    max_tokens: int
    supports_vision: bool
    jobs_end_date: object = None
    shutdown_date: object = None


def _model_of(m: BaseModel) -> _Model:
    return _Model(m.name, m.encoding, ImageScheme(m.image_tokens, m.patch_multiplier), m.training_price_per_1m,
                  m.max_tokens_per_example, m.supports_vision, m.jobs_end_date, m.shutdown_date)


def _models() -> list[_Model]:
    if not BaseModel.objects.exists():
        base_models_seed()  # a fresh install still shows costs; admin edits are never overwritten
    return [_model_of(m) for m in BaseModel.objects.filter(active=True).order_by("name")]


@dataclass
class _MemberFacts:
    example_id: int
    split: str
    messages: list
    target: str
    text_tokens: int = 0
    image_tokens: int = 0
    tokens_by_model: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


def _member_facts(example_id, split, messages, target, task, pages: _Pages, models: list[_Model]) -> _MemberFacts:
    facts = _MemberFacts(example_id, split, messages, target)
    line = build_line(messages, target)
    for problem in validate_line(line, check_images=False):
        facts.problems.append({"code": problem["code"], "message": problem["message"], "level": "error"})
    images = []
    for _, part in iter_image_parts(messages):
        detail = (part.get("image_url") or {}).get("detail", "auto")
        page_id = part_page_id(part)
        if page_id is None:
            continue
        check = pages.get(page_id)
        if check.problem:
            facts.problems.append({"code": "invalid_image", "message": check.problem, "level": "error"})
        elif part.get("sha256") and part["sha256"] != check.sha256:
            facts.problems.append({"code": "image_changed", "level": "error",
                                   "message": f"page {page_id} changed since the version was built: rebuild the dataset"})
        images.append((check.width, check.height, detail))
    try:
        target_validate(task=task, target_text=target)
    except TargetInvalid as exc:
        facts.problems.append({"code": "target_invalid", "message": f"target does not fit the task schema: {exc}", "level": "error"})
    text_cache = {}
    for model in models or [_Model("default", DEFAULT_ENCODING, DEFAULT_SCHEME, 0, 65536, True)]:
        if model.encoding not in text_cache:
            text_cache[model.encoding] = messages_text_tokens(line["messages"], model.encoding)
        image_total = sum(image_tokens(w, h, d, model.scheme) for w, h, d in images if w and h)
        total = text_cache[model.encoding] + image_total
        facts.tokens_by_model[model.name] = total
        if total > model.max_tokens:
            facts.problems.append({"code": "too_many_tokens", "level": "warning", "message":
                                   f"{total:,} tokens: above the {model.max_tokens:,} limit of {model.name} (it would be truncated)"})
    facts.text_tokens = text_cache.get(DEFAULT_ENCODING) or messages_text_tokens(line["messages"], DEFAULT_ENCODING)
    facts.image_tokens = sum(image_tokens(w, h, d, DEFAULT_SCHEME) for w, h, d in images if w and h)
    return facts


# --- gates ------------------------------------------------------------------------------------

def _gate(name, passed, value, threshold, message):
    return {"name": name, "passed": bool(passed), "value": value, "threshold": threshold, "message": message}


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def dataset_gates(dataset: Dataset, facts: list[_MemberFacts], tags_by_example: dict, groups: dict[int, str],
                  *, ground_truth_waiting: int = 0) -> list[dict]:
    """Policy gates, each {name, passed, value, threshold, message}. `ground_truth_waiting`: examples whose
    ground truth moved under a reviewed target and wait for the reviewer's choice (keep or take)."""
    rows = len(facts)
    gates = []
    min_rows = max(dataset.min_rows or 0, OPENAI_MIN_ROWS)
    gates.append(_gate("min_rows", rows >= min_rows, rows, min_rows,
                       f"{rows} rows: " + ("at least" if rows >= min_rows else "below") + f" the minimum of {min_rows}"))
    train_rows = sum(1 for f in facts if f.split == DatasetMember.Split.TRAIN)
    if train_rows < OPENAI_MIN_ROWS:
        gates.append(_gate("min_train_rows", False, train_rows, OPENAI_MIN_ROWS,
                           f"{train_rows} training rows: below OpenAI's minimum of {OPENAI_MIN_ROWS} (lower the validation fraction or add examples)"))
    n_groups = len(set(groups.values()))
    gates.append(_gate("min_groups", n_groups >= dataset.min_groups, n_groups, dataset.min_groups,
                       f"{n_groups} groups (parts): " + ("at least" if n_groups >= dataset.min_groups else "below") + f" the minimum of {dataset.min_groups}"))
    for tag, limit in sorted((dataset.max_tag_share or {}).items()):
        counter = Counter(v for f in facts for v in set(_tag_values((tags_by_example.get(f.example_id) or {}).get(tag))))
        value, count = counter.most_common(1)[0] if counter else ("", 0)
        share = count / rows if rows else 0.0
        ok = share <= float(limit)
        gates.append(_gate(f"max_tag_share:{tag}", ok, round(share, 4), float(limit),
                           f"{tag}={value or '(none)'} is {_pct(share)} of rows: " + ("within" if ok else "above") + f" the maximum of {_pct(float(limit))}"))
    targets = Counter(f.target.strip() for f in facts)
    duplicates = sum(count - 1 for count in targets.values() if count > 1)
    share = duplicates / rows if rows else 0.0
    ok = share <= dataset.max_duplicate_target_share
    gates.append(_gate("max_duplicate_target_share", ok, round(share, 4), dataset.max_duplicate_target_share,
                       f"{duplicates} rows repeat another row's target ({_pct(share)}): " + ("within" if ok else "above") + f" the maximum of {_pct(dataset.max_duplicate_target_share)}"))
    prefixes = Counter(f.target.strip()[: dataset.prefix_chars] for f in facts)
    prefix, count = prefixes.most_common(1)[0] if prefixes else ("", 0)
    share = count / rows if rows else 0.0
    ok = share <= dataset.max_same_prefix_share
    gates.append(_gate("max_same_prefix_share", ok, round(share, 4), dataset.max_same_prefix_share,
                       f"{_pct(share)} of targets start with the same {dataset.prefix_chars} characters ({prefix[:30]!r}…): "
                       + ("within" if ok else "above") + f" the maximum of {_pct(dataset.max_same_prefix_share)}"))
    errors = sum(1 for f in facts if any(p["level"] == "error" for p in f.problems))
    gates.append(_gate("format", errors == 0, errors, 0,
                       f"{errors} example(s) with format errors" + ("" if errors == 0 else ": fix them (see problems) and rebuild")))
    gates.append(_gate("ground_truth_decided", ground_truth_waiting == 0, ground_truth_waiting, 0,
                       f"{ground_truth_waiting} example(s) whose ground truth changed wait for the reviewer's choice"
                       + ("" if ground_truth_waiting == 0 else " (Examples, filter \"ground truth changed\"): keep or "
                          "take the new ground truth, then rebuild")))
    return gates


# --- training cost: the one figure the dataset page, the launch confirmation and the budget guard show ---

NO_IMAGES = "this model does not take images for fine-tuning"


@dataclass(frozen=True)
class TrainingCost:
    """What training `model` on a version costs: its own count of the train split's tokens × epochs × price."""

    model: str
    train_tokens: int  # one epoch, counted the way this model counts (its encoding, its image scheme)
    epochs: int
    price_per_1m: Decimal | None  # None: the provider publishes no price
    usd: Decimal | None  # None: unknown (shown as "unknown", never $0)
    problem: str = ""  # why this model cannot train on the version at all ("" when it can)
    validation_tokens_billed: int = 0  # validation passes a provider bills (Together), 0 for OpenAI

    @property
    def billed_tokens(self) -> int:
        return self.train_tokens * self.epochs + self.validation_tokens_billed


def training_cost_estimate(*, model: str, price_per_1m, supports_vision: bool, train_tokens: int, epochs: int,
                           has_images: bool, validation_tokens_billed: int = 0) -> TrainingCost:
    """The cost rule, in one place: price per 1M training tokens × (train tokens × epochs + billed validation
    tokens), to the cent; an unknown price gives an unknown cost."""
    epochs = max(int(epochs or 1), 1)
    price = Decimal(str(price_per_1m)) if price_per_1m is not None else None
    billed = int(train_tokens) * epochs + int(validation_tokens_billed)
    return TrainingCost(model=model, train_tokens=int(train_tokens), epochs=epochs, price_per_1m=price,
                        usd=training_cost(tokens=billed, price_per_1m=price, epochs=1) if price is not None else None,
                        problem=NO_IMAGES if has_images and not supports_vision else "",
                        validation_tokens_billed=int(validation_tokens_billed))


def _version_has_images(version: DatasetVersion) -> bool:
    tokens = version.tokens or {}
    return any(((tokens.get(split) or {}).get("image") or 0) > 0 for split in ("train", "validation"))


def _version_train_tokens(version: DatasetVersion, model: _Model, has_images: bool) -> int:
    """The train split's tokens as `model` counts them: stored at build for every active model; counted
    again from the frozen members for a model added (or activated) after the build."""
    tokens = version.tokens or {}
    by_model = tokens.get("by_model") or {}
    if model.name in by_model:
        return int(by_model[model.name].get("train") or 0)
    train = tokens.get("train") or {}
    if train.get("total") and not has_images and model.encoding == DEFAULT_ENCODING:
        return int(train["total"])  # text only, the encoding the stored totals use: the same count
    members = version.members.filter(split=DatasetMember.Split.TRAIN).order_by("position")
    rows = [tuple(m) for m in members.values_list("example_id", "split", "messages", "target").iterator(chunk_size=_BULK)]
    facts = _check(version.dataset, rows, _Pages(), [model])
    return sum(f.tokens_by_model.get(model.name, 0) for f in facts)


def dataset_version_training_cost(*, version: DatasetVersion, base_model: BaseModel,
                                  epochs: int | None = None, validation_passes: int = 0, scale: int = 1) -> TrainingCost:
    """Training `base_model` on the version's train split for `epochs` (default: the dataset's own), plus
    `validation_passes` over the validation split where the provider bills them (Together). `scale` projects a
    dataset `scale` times this size: the version's token counts multiplied, not counted again."""
    has_images = _version_has_images(version)
    model = _model_of(base_model)
    validation = 0
    if validation_passes:
        tokens = version.tokens or {}
        by_model = (tokens.get("by_model") or {}).get(model.name) or {}
        validation = int(by_model.get("validation") or (tokens.get("validation") or {}).get("total") or 0)
    return training_cost_estimate(
        model=model.name, price_per_1m=model.price, supports_vision=model.supports_vision,
        train_tokens=_version_train_tokens(version, model, has_images) * scale,
        epochs=epochs or version.dataset.epochs or 1, has_images=has_images,
        validation_tokens_billed=validation * validation_passes * scale)


def dataset_version_training_costs(*, version: DatasetVersion) -> list[tuple[BaseModel, TrainingCost]]:
    """Every active base model's cost on the version at the dataset's epochs, with today's prices."""
    return [(m, dataset_version_training_cost(version=version, base_model=m))
            for m in BaseModel.objects.filter(active=True).order_by("name")]


# --- the build --------------------------------------------------------------------------------

def _summaries(dataset: Dataset, facts: list[_MemberFacts], models: list[_Model], tags_by_example, groups):
    counts = {"train": 0, "validation": 0, "total": len(facts)}
    split_groups_seen = defaultdict(set)
    tag_counts: dict = {"train": defaultdict(Counter), "validation": defaultdict(Counter)}
    tokens = {s: {"text": 0, "image": 0, "total": 0} for s in ("train", "validation")}
    by_model = {m.name: {"train": 0, "validation": 0} for m in models}
    for f in facts:
        counts[f.split] += 1
        split_groups_seen[f.split].add(groups[f.example_id])
        for tag, value in (tags_by_example.get(f.example_id) or {}).items():
            for v in _tag_values(value):
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
        cost = training_cost_estimate(model=m.name, price_per_1m=m.price, supports_vision=m.supports_vision,
                                      train_tokens=by_model[m.name]["train"], epochs=dataset.epochs, has_images=has_images)
        costs[m.name] = {
            # An unknown price (None) stays unknown: never $0.
            "usd": str(cost.usd) if cost.usd is not None else None,
            "train_tokens": cost.train_tokens, "epochs": cost.epochs,
            "price_per_1m": str(cost.price_per_1m) if cost.price_per_1m is not None else None,
            "jobs_end_date": m.jobs_end_date.isoformat() if m.jobs_end_date else None,
            "shutdown_date": m.shutdown_date.isoformat() if m.shutdown_date else None,
            "note": cost.problem,
        }
    tag_counts = {split: {tag: dict(c) for tag, c in tags.items()} for split, tags in tag_counts.items()}
    return counts, tag_counts, tokens, costs


def _problems(facts: list[_MemberFacts]) -> list[dict]:
    problems, lines = [], Counter()
    for f in facts:
        lines[f.split] += 1
        for p in f.problems:
            problems.append({"example_id": f.example_id, "split": f.split, "line": lines[f.split], **p})
    return problems


def _content_hash(dataset: Dataset, facts: list[_MemberFacts]) -> str:
    task = dataset.task
    digest = hashlib.sha256()
    header = {"task": task.slug, "prompt_version": task.prompt_version, "schema_version": task.schema_version,
              "system_prompt": task.system_prompt, "compact_prompt": task.compact_prompt}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for f in facts:  # messages carry the image sha256s, so image bytes are part of the hash
        digest.update(b"\n" + json.dumps([f.split, f.messages, f.target], sort_keys=True, ensure_ascii=False).encode())
    return digest.hexdigest()


def _check(dataset, rows, pages, models, progress=None):
    """rows: [(example_id, split, messages snapshot, target)] in file order -> facts."""
    task = dataset.task
    facts = []
    for start in range(0, len(rows), _BULK):
        chunk = rows[start:start + _BULK]
        pages.prefetch(pid for row in chunk for pid in page_ref_ids(row[2]))
        facts.extend(_member_facts(*row, task, pages, models) for row in chunk)
        if progress is not None:
            progress(len(facts))
    return facts


def dataset_build(*, dataset: Dataset, user=None, progress=None) -> DatasetVersion:
    """Build (or find) the version for the dataset's current examples. Raises DatasetBuildError.

    `progress(stage, done, total)`, when given, hears after each batch: the page images are read first
    ("reading page images"), then every line is checked and counted ("checking lines").
    """
    examples = dataset_examples(dataset)
    if not examples:
        raise DatasetBuildError(
            f"No example of task {dataset.task.slug} matches the dataset {dataset.name!r} "
            f"(statuses {dataset.statuses or ['approved']}, filters {dataset.tag_filters or 'none'}): approve examples first."
        )
    groups = split_groups(dataset, examples)
    splits = assign_splits(groups=groups, fraction=dataset.validation_fraction, seed=dataset.split_seed)
    pages = _Pages()
    for start in range(0, len(examples), _BULK):  # in batches, so a long read reports how far it got
        pages.prefetch(pid for e in examples[start:start + _BULK] for pid in page_ref_ids(e.messages))
        if progress is not None:
            progress("reading page images", min(start + _BULK, len(examples)), len(examples))
    ordered = sorted(examples, key=lambda e: (splits[e.pk], e.pk))  # file order: train then validation, by id
    rows = [(e.pk, splits[e.pk], _snapshot_messages(e.messages, pages), e.target) for e in ordered]
    models = _models()
    facts = _check(dataset, rows, pages, models,
                   progress=None if progress is None else lambda done: progress("checking lines", done, len(rows)))
    tags_by_example = {e.pk: e.tags for e in examples}
    gates = dataset_gates(dataset, facts, tags_by_example, groups,
                          ground_truth_waiting=sum(1 for e in examples if e.ground_truth_target))
    counts, tag_counts, tokens, costs = _summaries(dataset, facts, models, tags_by_example, groups)
    content_hash = _content_hash(dataset, facts)

    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # one build number at a time
        latest = dataset.versions.order_by("-number").first()
        if latest and latest.content_hash == content_hash and latest.gates == gates:
            return latest  # nothing changed: the same frozen version
        number = (dataset.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = DatasetVersion.objects.create(
            dataset=dataset, number=number, content_hash=content_hash,
            prompt_version=dataset.task.prompt_version, schema_version=dataset.task.schema_version,
            counts=counts, tag_counts=tag_counts, tokens=tokens, cost_estimates=costs, gates=gates,
            problems=_problems(facts), gates_passed=all(g["passed"] for g in gates), created_by=user,
        )
        positions = Counter()
        members = []
        for f in facts:
            positions[f.split] += 1
            members.append(DatasetMember(version=version, example_id=f.example_id, split=f.split,
                                         position=positions[f.split], messages=f.messages, target=f.target,
                                         text_tokens=f.text_tokens, image_tokens=f.image_tokens))
        DatasetMember.objects.bulk_create(members, batch_size=_BULK)
    return version


def dataset_version_validate(*, version: DatasetVersion) -> DatasetVersion:
    """Re-run format checks, tokens and gates on the frozen members (e.g. after a page file was damaged).

    Members never change; only the check results (gates, problems, tokens, cost) are refreshed.
    """
    dataset = version.dataset
    members = version.members.order_by("split", "position").values_list("example_id", "split", "messages", "target")
    rows = [tuple(m) for m in members.iterator(chunk_size=_BULK)]
    pages, models = _Pages(), _models()
    facts = _check(dataset, rows, pages, models)
    ids = [r[0] for r in rows]
    examples = list(Example.objects.filter(pk__in=ids).only("id", "group_key", "tags", "near_duplicate_of_id",
                                                            "ground_truth_target"))
    tags_by_example = {e.pk: e.tags for e in examples}
    groups = split_groups(dataset, examples)
    version.gates = dataset_gates(dataset, facts, tags_by_example, groups,
                                  ground_truth_waiting=sum(1 for e in examples if e.ground_truth_target))
    version.counts, version.tag_counts, version.tokens, version.cost_estimates = _summaries(
        dataset, facts, models, tags_by_example, groups)
    version.problems = _problems(facts)
    version.gates_passed = all(g["passed"] for g in version.gates)
    version.save(update_fields=["gates", "counts", "tag_counts", "tokens", "cost_estimates", "problems", "gates_passed"])
    return version


def dataset_resolve(*, ref: str) -> Dataset:
    """A dataset by id or name (for the command line)."""
    dataset = Dataset.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
    dataset = dataset or Dataset.objects.filter(name=ref).first()
    if dataset is None:
        raise DatasetBuildError(f"No dataset with id or name {ref!r}.")
    return dataset
