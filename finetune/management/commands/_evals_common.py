"""Helpers shared by the finetune commands (evaluate, launch_run, compare, promote, estimate)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from curation.selectors import DatasetVersionNotFound, dataset_version_by_ref
from finetune.metrics import metric_rows, pct_with_ci


def dataset_version(value: str):
    """The version a command names (NAME:vN, NAME@N or id), or a CommandError naming the accepted forms."""
    try:
        return dataset_version_by_ref(ref=value)
    except DatasetVersionNotFound as exc:
        raise CommandError(str(exc)) from exc


def user(username: str | None, *, required: bool = False):
    if not username:
        if required:
            raise CommandError(
                "--user USERNAME is required: the action is recorded under that user and needs their permission."
            )
        return None
    found = get_user_model().objects.filter(username=username).first()
    if found is None:
        raise CommandError(f"No user {username!r}.")
    return found


def metrics_lines(metrics: dict) -> list[str]:
    lines = [
        f"{f'{name} {subject}'.strip():<60} {pct_with_ci(block)}" for name, subject, block, _ in metric_rows(metrics)
    ]
    if metrics.get("error_counts"):
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in sorted(metrics["error_counts"].items())))
    return lines
