"""Helpers shared by the evaluation commands (evaluate, compare, promote, estimate)."""
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from curation.models import DatasetVersion


def pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def with_ci(block) -> str:
    if not block or block.get("value") is None:
        return "n/a"
    ci = block.get("ci")
    return f"{pct(block['value'])} [{pct(ci[0])} .. {pct(ci[1])}]" if ci else pct(block["value"])


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
    lines = [f"JSON validity      {with_ci(metrics.get('json_validity'))}",
             f"schema validity    {with_ci(metrics.get('schema_validity'))}"]
    for path, block in (metrics.get("numeric") or {}).items():
        lines.append(f"MAPE   {path}  {with_ci(block.get('mape'))}")
        lines.append(f"MdAPE  {path}  {with_ci(block.get('mdape'))}")
        lines.append(f"bias   {path}  {with_ci(block.get('bias'))}")
    for field, block in (metrics.get("categorical") or {}).items():
        lines.append(f"exact match {field}  {with_ci(block.get('accuracy'))}")
    if metrics.get("error_counts"):
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(metrics["error_counts"].items())))
    return lines
