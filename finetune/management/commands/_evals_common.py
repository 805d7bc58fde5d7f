"""Helpers shared by the evaluation commands (evaluate, compare, promote, estimate)."""
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from curation.models import DatasetVersion
from finetune.metrics import metric_rows, pct_with_ci


def dataset_version(value: str) -> DatasetVersion:
    """An id, or `dataset name@number`."""
    try:
        if "@" in value:
            name, number = value.rsplit("@", 1)
            return DatasetVersion.objects.select_related("dataset__task").get(dataset__name=name, number=int(number))
        return DatasetVersion.objects.select_related("dataset__task").get(pk=int(value))
    except (ValueError, DatasetVersion.DoesNotExist):
        raise CommandError(f"No dataset version {value!r} (give its id or 'dataset name@number').")


def user(username: str | None, *, required: bool = False):
    if not username:
        if required:
            raise CommandError("--user USERNAME is required: the action is recorded under that user and needs their permission.")
        return None
    found = get_user_model().objects.filter(username=username).first()
    if found is None:
        raise CommandError(f"No user {username!r}.")
    return found


def metrics_lines(metrics: dict) -> list[str]:
    lines = [f"{f'{name} {subject}'.strip():<60} {pct_with_ci(block)}" for name, subject, block, _ in metric_rows(metrics)]
    if metrics.get("error_counts"):
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(metrics["error_counts"].items())))
    return lines
