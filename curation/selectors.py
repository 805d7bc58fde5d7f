"""Reads of the data side that more than one caller needs (admin screens, commands, benchmarks)."""

import hashlib
import json
import re

from django.core.cache import cache
from django.db.models import Count, Max

from curation.models import (
    DatasetMember,
    DatasetVersion,
    DrawingPage,
    Example,
    ExampleChange,
    GroundTruth,
    Machine,
    MaterialAlias,
)
from curation.openai_format import image_part_url, iter_image_parts, page_ref_ids, parse_page_ref

# The order dataset_version_export writes lines in: split, then position. Line n (1-based) of a split's file
# is the n-th member of that split in this order (`dataset_version_export_lines`).
EXPORT_LINE_ORDER = ("split", "position")

# --- Review (issue 3): what the review screen and the example changelist read. Each is one query. ---

TAG_VALUES_CACHE_SECONDS = 60


def example_status_counts(*, task_id=None) -> dict[str, int]:
    """{status: count} for every status (zeros included), in one aggregate query."""
    queryset = Example.objects.all()
    if task_id:
        queryset = queryset.filter(task_id=task_id)
    counts = dict.fromkeys(Example.Status.values, 0)
    # COUNT(*), not COUNT(id): PostgreSQL then reads the status index alone instead of every (wide) row.
    for row in queryset.order_by().values("status").annotate(n=Count("*")):
        counts[row["status"]] = row["n"]
    return counts


def example_neighbours(*, example: Example) -> tuple[int | None, int | None]:
    """Ids of the previous and next example of the same task, in changelist order (by id)."""
    same_task = Example.objects.filter(task_id=example.task_id).order_by()
    previous_id = same_task.filter(pk__lt=example.pk).order_by("-pk").values_list("pk", flat=True).first()
    next_id = same_task.filter(pk__gt=example.pk).order_by("pk").values_list("pk", flat=True).first()
    return previous_id, next_id


def example_next_pending(*, after: int, task) -> int | None:
    """Id of the next pending example of the task after `after`, wrapping around; None when none is left."""
    task_id = getattr(task, "pk", task)
    pending = Example.objects.filter(task_id=task_id, status=Example.Status.PENDING).exclude(pk=after)
    found = pending.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True).first()
    if found is None:
        found = pending.order_by("pk").values_list("pk", flat=True).first()
    return found


def example_history(*, example: Example, limit: int = 50) -> list[ExampleChange]:
    """The newest `limit` changes of an example, with their users."""
    return list(example.changes.select_related("user").order_by("-at", "-id")[:limit])


def example_page_ids(example: Example) -> list[int]:
    """Page ids referenced by the example's messages ("page:<id>" image urls), in message order."""
    return page_ref_ids(example.messages or [])


def example_pages(*, example: Example) -> list[DrawingPage]:
    """The pages the model is shown for this example; the drawing's pages when messages name none."""
    ids = example_page_ids(example)
    if ids:
        by_id = {page.pk: page for page in DrawingPage.objects.filter(pk__in=ids)}
        return [by_id[pk] for pk in ids if pk in by_id]
    if example.drawing_id:
        return list(DrawingPage.objects.filter(drawing_id=example.drawing_id).order_by("number"))
    return []


def example_part_number(example: Example) -> str:
    return example.group_key or (example.drawing.part_number if example.drawing_id else "")


def example_ground_truth(*, example: Example) -> dict | None:
    """The ground-truth table of the example's part (see ground_truth_for_part below); one query."""
    return ground_truth_for_part(example_part_number(example))


def target_editor_choices() -> dict[str, list[dict]]:
    """What the target editor offers per field name: machines from the Machine table, materials as their norms
    and every alias written on drawings (the alias says which norm it means). Two queries."""
    materials, seen = [], set()
    for alias in MaterialAlias.objects.order_by("norm", "written"):
        for value, label in ((alias.norm, "norm"), (alias.written, f"= {alias.norm}")):
            if value not in seen:
                seen.add(value)
                materials.append({"value": value, "label": label})
    return {
        "machine": [{"value": name, "label": kind} for name, kind in Machine.objects.values_list("name", "kind")],
        "material": materials,
    }


def example_tag_values(*, keys: list[str]) -> dict[str, list[str]]:
    """{key: sorted distinct values} for several tags in one query; list-valued tags (machine: [...]) are flattened.

    The database does the DISTINCT over the combinations of the JSON values, so Python sees a few hundred
    rows at most, not every example.
    """
    if not keys:
        return {}
    # Reading every example's JSON is the one part of the changelist that grows with the table, so the
    # answer is cached under a fingerprint that changes whenever an example is added (count and newest
    # updated_at), removed (count) or saved (updated_at); the timeout bounds staleness after bulk updates that
    # skip updated_at. Two queries, not one aggregate: a lone MAX is one step down the updated_at index on both
    # databases, and a plain COUNT(*) reads the smallest index, whereas MAX beside COUNT reads every row.
    examples = Example.objects.order_by()
    count = examples.count()
    last = examples.aggregate(last=Max("updated_at"))["last"]
    cache_key = "review:tag-values:" + hashlib.sha256(json.dumps([keys, count, str(last)]).encode()).hexdigest()
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    values = {key: set() for key in keys}
    rows = Example.objects.order_by().values_list(*[f"tags__{key}" for key in keys]).distinct()
    for row in rows:
        for key, value in zip(keys, row):
            if isinstance(value, list):
                values[key].update(str(item) for item in value if item not in (None, ""))
            elif value not in (None, "") and not isinstance(value, dict):
                values[key].add(str(value))
    result = {key: sorted(found) for key, found in values.items()}
    cache.set(cache_key, result, timeout=TAG_VALUES_CACHE_SECONDS)
    return result


def examples_jsonl_lines(*, examples):
    """One JSON line per example (messages with page references unresolved, target, status, tags)."""
    # defer(None): the changelist defers the JSON columns, which are the point here.
    for example in examples.defer(None).select_related("task").order_by("pk").iterator(chunk_size=500):
        yield (
            json.dumps(
                {
                    "id": example.pk,
                    "task": example.task.slug,
                    "status": example.status,
                    "group_key": example.group_key,
                    "tags": example.tags,
                    "messages": example.messages,
                    "target": example.target,
                },
                ensure_ascii=False,
            )
            + "\n"
        )


# --- Ground truth (issue 3, data side): for the drawing admin and the review screen. ---


def ground_truth_for_part(part_number: str) -> dict | None:
    """The part's ground truth as a table: material, flags and one row per (machine, operation); None if none.

    One query. Rows: {operation, machine, machine_time_min_per_piece, setup_min, n, cv}, in target order.
    """
    if not part_number:
        return None
    ground_truth = GroundTruth.objects.filter(part_number=part_number).first()
    if ground_truth is None:
        return None
    return {
        "part_number": ground_truth.part_number,
        "material": ground_truth.material,
        "material_source": ground_truth.material_source,
        "record_count": ground_truth.record_count,
        "max_cv": ground_truth.max_cv,
        "high_cv": ground_truth.high_cv,
        "computed_at": ground_truth.computed_at,
        "operations": [
            {key: op.get(key) for key in ("operation", "machine", "machine_time_min_per_piece", "setup_min", "n", "cv")}
            for op in ground_truth.operations or []
        ],
    }


def dataset_version_export_lines(*, version: DatasetVersion, split: str) -> list[tuple[int, int]]:
    """(member id, example id) for each line of the exported `split` file, in file order: what a provider's
    "line N" points at."""
    return list(version.members.filter(split=split).order_by(*EXPORT_LINE_ORDER).values_list("id", "example_id"))


def dataset_version_refused_members(*, version: DatasetVersion) -> list[dict]:
    """Members whose example a fine-tuning provider dropped or refused, with their exported line
    ({"member", "example", "split", "line", "reason"}): what the dataset version page lists."""
    rows = []
    for member in (
        version.members.filter(example__provider_refused=True).select_related("example").order_by(*EXPORT_LINE_ORDER)
    ):
        line = version.members.filter(split=member.split, position__lt=member.position).count() + 1
        rows.append(
            {
                "member": member,
                "example": member.example,
                "split": member.split,
                "line": line,
                "reason": member.example.provider_refused_reason,
            }
        )
    return rows


# --- Provider formats: does a dataset version fit OpenAI, Azure OpenAI and Together? ---


def dataset_version_provider_fit(*, version) -> list[dict]:
    """[{provider, label, fits, reasons, source}] for each trainer, read from the version's frozen members.

    Images referenced as drawing pages are judged by the rendered page (format, and the size frozen into the
    version); base64 images by their data URL. Two queries, whatever the size of the version.
    """
    from curation.provider_formats import RULES, ExampleFacts, ImageFact, provider_fit

    members = list(version.members.order_by("split", "position").values_list("split", "messages"))
    page_ids = {pid for _, messages in members for pid in page_ref_ids(messages)}
    pages = {p["id"]: p for p in DrawingPage.objects.filter(pk__in=page_ids).values("id", "format", "bytes")}
    examples, lines = [], {}
    for split, messages in members:
        lines[split] = lines.get(split, 0) + 1
        roles = [m.get("role") for m in messages if isinstance(m, dict)] + ["assistant"]  # the target
        images = []
        for index, part in iter_image_parts(messages):
            role = messages[index].get("role", "")
            url = image_part_url(part) or ""
            page_id = parse_page_ref(url)
            if page_id is not None:
                page = pages.get(page_id) or {}
                fmt = {"jpg": "JPEG"}.get(
                    (page.get("format") or "").lower(), (page.get("format") or "").upper() or None
                )
                images.append(
                    ImageFact(role=role, source="page", format=fmt, size_bytes=part.get("bytes") or page.get("bytes"))
                )
            elif url.startswith("data:"):
                header, _, payload = url.partition(",")
                mime = header[5:].split(";")[0]
                fmt = mime.split("/")[-1].upper() if mime.startswith("image/") else mime or None
                images.append(
                    ImageFact(
                        role=role, source="data", format={"JPG": "JPEG"}.get(fmt, fmt), size_bytes=len(payload) * 3 // 4
                    )
                )
            else:
                images.append(ImageFact(role=role, source="url"))
        examples.append(ExampleFacts(line=lines[split], split=split, roles=roles, images=images))
    train_rows = sum(1 for split, _ in members if split == DatasetMember.Split.TRAIN)
    result = []
    for rules in RULES.values():
        reasons = provider_fit(examples, rules, train_rows=train_rows)
        result.append(
            {
                "provider": rules.provider,
                "label": rules.label,
                "fits": not reasons,
                "reasons": reasons,
                "source": rules.source,
            }
        )
    return result


# --- Dataset versions named on the command line (every command that takes a version uses this). ---

VERSION_REF_FORMS = "NAME:vN (e.g. tech-2026:v3), NAME@N or the version id"
VERSIONS_LISTED = 20
# The name is greedy: it may itself hold ":v", "@" or spaces, and the last separator splits off the number.
# "NAME vN" is how the admin shows a version, so a name copied from there is found too.
_VERSION_REF = re.compile(r"(?P<name>.+)(?::v|@| v)(?P<number>\d+)")


class DatasetVersionNotFound(LookupError):
    """No dataset version answers to the reference; the message names the accepted forms and the versions there are."""


def dataset_version_by_ref(*, ref: str) -> DatasetVersion:
    """A dataset version by `NAME:vN`, `NAME@N` (the evaluation commands' older spelling) or numeric id.

    Raises DatasetVersionNotFound with the accepted forms and the versions that exist (of the named
    dataset when it exists, else of all datasets, at most VERSIONS_LISTED).
    """
    ref = (ref or "").strip()
    versions = DatasetVersion.objects.select_related("dataset__task")
    name = None
    if ref.isdigit():
        version = versions.filter(pk=int(ref)).first()
    elif match := _VERSION_REF.fullmatch(ref):
        name = match["name"].strip()
        version = versions.filter(dataset__name=name, number=int(match["number"])).first()
    else:
        version = None
    if version is not None:
        return version
    existing = DatasetVersion.objects.select_related("dataset").order_by("dataset__name", "number")
    if name is not None and existing.filter(dataset__name=name).exists():
        existing, where = existing.filter(dataset__name=name), f"Versions of {name!r}"
    else:
        where = "Dataset versions" if name is None else f"No dataset is named {name!r}. Dataset versions"
    listed = [f"{row.dataset.name}:v{row.number} (id {row.pk})" for row in existing[:VERSIONS_LISTED]]
    more = existing.count() - len(listed)
    if listed:
        there = f"{where}: {', '.join(listed)}" + (f" and {more} more" if more > 0 else "") + "."
    else:
        there = "There are no dataset versions yet: build_dataset makes one."
    raise DatasetVersionNotFound(f"No dataset version {ref!r}: give {VERSION_REF_FORMS}. {there}")


# --- Few-shot examples (finetune's few-shot builder reads the data side only through these). ---


def drawing_page_hashes(*, drawing_ids) -> dict[int, list[int]]:
    """{drawing id: [page dHash as int, in page order]} in one query; pages without a hash are left out."""
    hashes: dict[int, list[int]] = {}
    rows = DrawingPage.objects.filter(drawing_id__in=set(drawing_ids)).order_by("drawing_id", "number")
    for drawing_id, phash in rows.values_list("drawing_id", "phash"):
        try:
            value = int(phash, 16)
        except (TypeError, ValueError):
            continue  # not hashed (rendered before hashes existed)
        hashes.setdefault(drawing_id, []).append(value)
    return hashes


def dataset_version_member_facts(*, version, split: str, approved_only: bool = False) -> list[dict]:
    """The members of one split of a version with what choosing similar examples needs, in position order:
    member and example ids, the frozen messages and target, the example's drawing, group key, tags,
    near-duplicate link and its drawing's page hashes. Two queries."""
    members = (
        DatasetMember.objects.filter(version=version, split=split).select_related("example").order_by("position", "id")
    )
    if approved_only:
        members = members.filter(example__status=Example.Status.APPROVED)
    members = list(members)
    hashes = drawing_page_hashes(drawing_ids=[m.example.drawing_id for m in members if m.example.drawing_id])
    return [
        {
            "member_id": m.pk,
            "example_id": m.example_id,
            "drawing_id": m.example.drawing_id,
            "group_key": m.example.group_key,
            "tags": m.example.tags or {},
            "near_duplicate_of_id": m.example.near_duplicate_of_id,
            "messages": m.messages,
            "target": m.target,
            "image_tokens": m.image_tokens,
            "page_hashes": hashes.get(m.example.drawing_id, []),
        }
        for m in members
    ]


# --- The simulated provider (the demo): what it answers from. ---


def drawing_page_truths(*, task) -> list[dict]:
    """Every rendered page with what is known of its drawing for `task`, for the simulated provider's answers:
    {page_sha256, drawing_sha256, part_number, material, target}. The target is the drawing's example (approved
    first, then the latest not rejected: what an evaluation compares with), else its part's ground truth, else None.
    A few queries over the whole table: the simulated provider serves demo data only."""
    from curation.services.ground_truth import ground_truth_target

    targets = {}
    if task is not None:
        examples = (
            Example.objects.filter(task=task, drawing__isnull=False)
            .exclude(status=Example.Status.REJECTED)
            .order_by("pk")
            .values_list("drawing_id", "status", "target")
        )
        for drawing_id, status, target in examples:
            if drawing_id not in targets or status == Example.Status.APPROVED or targets[drawing_id][0] != "approved":
                targets[drawing_id] = (status, target)
    truths = {gt.part_number: gt for gt in GroundTruth.objects.exclude(operations=[])}
    rows = []
    for page in (
        DrawingPage.objects.select_related("drawing")
        .only("sha256", "drawing__sha256", "drawing__part_number", "drawing__material")
        .order_by("pk")
    ):
        drawing = page.drawing
        target = None
        if drawing.pk in targets:
            try:
                target = json.loads(targets[drawing.pk][1])
            except ValueError:
                target = targets[drawing.pk][1]
        elif drawing.part_number in truths:
            target = ground_truth_target(truths[drawing.part_number])
        rows.append(
            {
                "page_sha256": page.sha256,
                "drawing_sha256": drawing.sha256,
                "part_number": drawing.part_number,
                "material": drawing.material,
                "target": target,
            }
        )
    return rows
