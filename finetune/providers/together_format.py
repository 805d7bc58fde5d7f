"""Together's values in our terms: the run tag in a job's suffix, job statuses and failure words, the job
options we accept, timestamps and event ids. Plain functions of what the SDK returned: no client, no settings.
"""

from __future__ import annotations

import datetime
import hashlib
import re

from finetune.providers.base import ProviderError

# Together's suffix limit (the SDK's documentation of `suffix`: "up to 40 characters").
SUFFIX_MAX = 40
RUN_TAG_PREFIX = "gr"
_RUN_TAG = re.compile(rf"(?:^|-){RUN_TAG_PREFIX}(\d+)$")

# Together status -> ours (TrainingRun.Status). Unknown values are stored as they come.
STATUS_MAP = {
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "compressing": "running",
    "uploading": "running",  # the trained model being uploaded, not our files
    "cancel_requested": "cancel_requested",
    "cancelled": "cancelled",
    "completed": "succeeded",
    "error": "failed",
    "user_error": "failed",
    "failed": "failed",
}
FAILED_STATUSES = {"error", "user_error", "failed"}
# Why a job ended, in words, when its events say nothing more precise.
FAILURE_WORDS = {
    "user_error": "Together stopped the job because of a problem with its inputs (most often the training file "
    "or a parameter outside the model's limits).",
    "error": "Together stopped the job on an internal error.",
    "failed": "Together reports the job as failed.",
}
# Learning rate our "learning_rate_multiplier" multiplies: Together's documented default.
BASE_LEARNING_RATE = 1e-5
DEFAULT_OPTIONS = {"training_type": "lora", "n_checkpoints": 1, "n_evals": 0, "train_vision": False}


def run_tag(run_id: int | str) -> str:
    return f"{RUN_TAG_PREFIX}{run_id}"


def job_suffix(*, suffix: str, run_id: int | str) -> str:
    """The suffix sent to Together: the user's words (letters, digits, hyphens) then our run tag, ≤ 40 chars."""
    tag = run_tag(run_id)
    words = re.sub(r"[^a-z0-9-]+", "-", (suffix or "").lower()).strip("-")
    room = SUFFIX_MAX - len(tag) - 1
    words = words[: max(room, 0)].strip("-")
    return f"{words}-{tag}" if words else tag


def run_id_of(suffix: str | None) -> str:
    match = _RUN_TAG.search(suffix or "")
    return match.group(1) if match else ""


def options_clean(options: dict | None) -> dict:
    """Together's own job settings, checked: training_type lora|full, n_checkpoints ≥ 1, n_evals ≥ 0, train_vision."""
    merged = {**DEFAULT_OPTIONS, **(options or {})}
    unknown = set(merged) - set(DEFAULT_OPTIONS)
    if unknown:
        raise ProviderError(f"unknown Together option(s): {', '.join(sorted(unknown))}", code="invalid_request")
    if merged["training_type"] not in ("lora", "full"):
        raise ProviderError(
            f"training_type must be lora or full, not {merged['training_type']!r}", code="invalid_request"
        )
    try:
        merged["n_checkpoints"] = int(merged["n_checkpoints"])
        merged["n_evals"] = int(merged["n_evals"])
    except (TypeError, ValueError):
        raise ProviderError("n_checkpoints and n_evals must be whole numbers", code="invalid_request")
    if merged["n_checkpoints"] < 1 or merged["n_evals"] < 0:
        raise ProviderError("n_checkpoints must be at least 1 and n_evals at least 0", code="invalid_request")
    merged["train_vision"] = bool(merged["train_vision"])
    return merged


def epoch_of(value) -> int | None:
    """Together sends ISO dates (or datetimes from the SDK); our records keep Unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp())
    return None


def field_of(obj, name: str, default=None):
    """A field of an SDK object or a plain dict; fields the SDK's model does not declare sit in `model_extra`."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    value = getattr(obj, name, default)
    if value is default and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name, default)
    return value


def event_fields(event) -> dict:
    """The fields of one event (SDK object or dict) that our event rows and event ids are made of."""
    return {
        "created_at": field_of(event, "created_at"),
        "level": str(field_of(event, "level") or ""),
        "type": str(field_of(event, "type") or ""),
        "message": str(field_of(event, "message") or ""),
        "step": field_of(event, "step"),
        "hash": field_of(event, "hash"),
    }


def event_id_of(job_id: str, fields: dict) -> str:
    """Together's events carry no id: the job id and the event's content make one (stable across syncs)."""
    if fields.get("hash"):
        return f"tg-{job_id}-{fields['hash']}"[:100]
    raw = "|".join(str(fields.get(k) or "") for k in ("created_at", "type", "level", "message", "step"))
    return f"tg-{job_id}-{hashlib.sha1(raw.encode()).hexdigest()[:20]}"
