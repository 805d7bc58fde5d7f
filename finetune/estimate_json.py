"""An estimate as JSON: the one shape the API answers and the admin's "Download JSON" serves, so they never differ."""

from __future__ import annotations

from django.urls import reverse

from finetune.models import Estimate
from gestima.work import WorkStatus


def estimate_status_url(estimate: Estimate) -> str:
    return reverse("api:estimate", args=[estimate.pk])


def estimate_json(estimate: Estimate) -> dict:
    return {
        "status": estimate.status,
        "status_url": estimate_status_url(estimate),
        "progress": {"done": estimate.done, "total": estimate.total, "stage": estimate.stage or None},
        "id": estimate.pk,
        "task": estimate.task.slug,
        "drawing_id": estimate.drawing_id,
        "part_number": estimate.drawing.part_number,
        "model": estimate.model_name,
        "provider": estimate.provider,
        "model_version_id": estimate.model_version_id,
        "output": estimate.output,
        "answered_by": estimate.answered_by,
        "simulated": estimate.is_simulated,
        "fallback_reason": estimate.fallback_reason or None,
        "error_kind": estimate.error_kind or None,
        "error": estimate.error or None,
        "latency_ms": estimate.latency_ms,
        "input_tokens": estimate.input_tokens,
        "output_tokens": estimate.output_tokens,
        "cost_usd": None if estimate.cost_usd is None else str(estimate.cost_usd),
        "created_at": estimate.created_at.isoformat(),
    } | ({"model": None, "provider": None} if estimate.status != WorkStatus.DONE else {})
