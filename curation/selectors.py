"""Reads of the data side that more than one caller needs (admin screens, commands, benchmarks)."""
import hashlib
import json
import re

from django.core.cache import cache
from django.db.models import Count, Max

from curation.models import DatasetVersion, DrawingPage, Example, ExampleChange, GroundTruth

# --- Review (issue 3): what the review screen and the example changelist read. Each is one query. ---

PAGE_REF_PREFIX = "page:"
TAG_VALUES_CACHE_SECONDS = 60


def example_status_counts(*, task_id=None) -> dict[str, int]:
    """{status: count} for every status (zeros included), in one aggregate query."""
    queryset = Example.objects.all()
    if task_id:
        queryset = queryset.filter(task_id=task_id)
    counts = dict.fromkeys(Example.Status.values, 0)
    for row in queryset.order_by().values("status").annotate(n=Count("id")):
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
    ids = []
    for message in example.messages or []:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if isinstance(url, str) and url.startswith(PAGE_REF_PREFIX):
                try:
                    ids.append(int(url[len(PAGE_REF_PREFIX):]))
                except ValueError:
                    continue
    return ids


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


def example_tag_values(*, keys: list[str]) -> dict[str, list[str]]:
    """{key: sorted distinct values} for several tags in one query; list-valued tags (machine: [...]) are flattened.

    The database does the DISTINCT over the combinations of the JSON values, so Python sees a few hundred
    rows at most, not every example.
    """
    if not keys:
        return {}
    # Reading every example's JSON is the one part of the changelist that grows with the table, so the
    # answer is cached under a fingerprint that changes whenever an example is added, removed or saved
    # (one cheap aggregate, no JSON); the timeout bounds staleness after bulk updates that skip updated_at.
    fingerprint = Example.objects.order_by().aggregate(n=Count("id"), last=Max("updated_at"), top=Max("id"))
    cache_key = "review:tag-values:" + hashlib.sha256(
        json.dumps([keys, fingerprint["n"], str(fingerprint["last"]), fingerprint["top"]]).encode()
    ).hexdigest()
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
        yield json.dumps({
            "id": example.pk, "task": example.task.slug, "status": example.status, "group_key": example.group_key,
            "tags": example.tags, "messages": example.messages, "target": example.target,
        }, ensure_ascii=False) + "\n"


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
