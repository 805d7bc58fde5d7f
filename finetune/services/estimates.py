"""Estimates for new drawings by the task's active model, and expert corrections that become pending examples.

An estimate is one synchronous chat call (a person or a client waits for it): no queue, the provider's
timeout bounds it. When the model gives no answer (provider error, unreadable page image) nothing is stored
and EstimateFailed says why; an answer that breaks the schema is stored with its error kind.
"""
from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from curation.models import Drawing, Example, Task
from curation.services.tasks import TargetInvalid, is_text_task, target_validate
from finetune.models import Estimate, ModelKind
from finetune.providers.base import ProviderError
from finetune.services.endpoints import endpoint_prices, model_provider
from finetune.services.few_shot import drawing_shots, messages_with_shots
from finetune.services.evals import answer_check, api_messages, call_cost, model_prices
from finetune.services.promotion import model_version_active, provider_tag


class EstimateError(Exception):
    """An estimate that cannot be asked (no active model, drawing not rendered); the message says what to do."""


class DrawingNotReady(EstimateError):
    pass


class EstimateFailed(EstimateError):
    """The model gave no answer (provider error, unreadable page image): nothing is stored, `kind` says which."""

    def __init__(self, message: str, *, kind: str):
        super().__init__(message)
        self.kind = kind


class _Fields(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def estimate_messages(*, task: Task, drawing: Drawing, prompt_text: str) -> list[dict]:
    """System prompt, user text and page references, as examples are built (images embedded later)."""
    pages = list(drawing.pages.order_by("number")[: max(0, min(task.max_images, 10))]) if task.uses_images else []
    text = (task.user_prompt_template or "Drawing of part {part_number}.").format_map(
        _Fields(part_number=drawing.part_number, page_count=drawing.page_count or len(pages)))
    content = [{"type": "text", "text": text}] + [
        {"type": "image_url", "image_url": {"url": f"page:{page.pk}", "detail": task.image_detail}} for page in pages]
    return [{"role": "system", "content": prompt_text}, {"role": "user", "content": content}]


def estimate_create(*, drawing: Drawing, task: Task, user=None) -> Estimate:
    """Ask the task's active model (read now: a promotion takes effect on the next call) about a drawing."""
    if user is not None and not user.has_perm("finetune.add_estimate"):
        raise PermissionDenied("You may not ask for estimates.")
    version = model_version_active(task=task)
    if version is None:
        raise EstimateError(f"Task {task.slug} has no active model: promote an evaluated model first.")
    if task.uses_images and (drawing.status != Drawing.Status.RENDERED or not drawing.pages.exists()):
        raise DrawingNotReady(f"Drawing {drawing} is {drawing.status}, not rendered yet: try again when its pages exist.")
    prompt_text = version.prompt_text or task.compact_prompt or task.system_prompt
    estimate = Estimate(task=task, drawing=drawing, model_version=version, model_name=version.model_name,
                        provider=provider_tag(provider=version.provider, kind=version.kind),
                        created_by=user if (user is not None and user.is_authenticated) else None)
    try:
        messages = estimate_messages(task=task, drawing=drawing, prompt_text=prompt_text)
        if version.kind == ModelKind.FEW_SHOT:  # worked examples from the dataset version it was evaluated with
            messages = messages_with_shots(messages, drawing_shots(config=version.few_shot, drawing=drawing))
        messages = api_messages(messages)
        outcome = model_provider(provider=version.provider, endpoint=version.endpoint).chat(
            model=version.model_name, messages=messages, json_output=not is_text_task(task), temperature=0.0,
            timeout=float(getattr(settings, "EVAL_TIMEOUT_SECONDS", 120)))
    except ProviderError as exc:
        raise EstimateFailed(f"The model {version.model_name} did not answer: {exc.code}: {exc.message}",
                             kind="api_error") from exc
    except Exception as exc:  # a page image that cannot be read
        raise EstimateFailed(f"The request could not be made: {type(exc).__name__}: {exc}", kind="input_error") from exc
    else:
        kind, parsed, message = answer_check(task=task, text=outcome.text, refusal=outcome.refusal)
        estimate.output = parsed
        estimate.raw_output = outcome.text or outcome.refusal
        estimate.error_kind, estimate.error = kind, message
        estimate.latency_ms = outcome.latency_ms
        estimate.input_tokens, estimate.output_tokens = outcome.input_tokens, outcome.output_tokens
        estimate.cost_usd = call_cost(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
                                      prices=endpoint_prices(version.endpoint) if version.endpoint_id
                                      else model_prices(version.model_name))
    estimate.save()
    return estimate


def _content_hash(messages, target_text: str) -> str:
    # The same hash curation uses for examples (curation.services.examples.content_hash).
    return hashlib.sha256(json.dumps([messages, target_text], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def estimate_correct(*, estimate: Estimate, user, target_text: str) -> Estimate:
    """Validate an expert's corrected answer against the task schema; it becomes a pending Example (source=correction)."""
    if user is None or not user.has_perm("finetune.correct_estimate"):
        raise PermissionDenied("You may not correct estimates.")
    task = estimate.task
    value = target_validate(task=task, target_text=target_text)  # raises TargetInvalid with the failing path
    normalised = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    drawing = estimate.drawing
    # Examples carry the compact prompt, as the dataset build makes them (the dataset's prompt, not the estimate's).
    messages = estimate_messages(task=task, drawing=drawing, prompt_text=task.compact_prompt or task.system_prompt)
    digest = _content_hash(messages, normalised)
    tags = {}
    if isinstance(value, dict):
        if value.get("machines"):
            tags["machine"] = value["machines"]
        if value.get("material"):
            tags["material"] = value["material"]
    with transaction.atomic():
        example = Example.objects.filter(task=task, content_hash=digest).first()
        if example is None:
            try:
                with transaction.atomic():
                    example = Example.objects.create(
                        task=task, drawing=drawing, messages=messages, target=normalised, schema_version=task.schema_version,
                        status=Example.Status.PENDING, source=Example.Source.CORRECTION, tags=tags,
                        group_key=drawing.part_number or f"drawing-{drawing.pk}", content_hash=digest,
                        review_note=f"Correction of estimate {estimate.pk} ({estimate.model_name}).",
                    )
            except IntegrityError:
                example = Example.objects.get(task=task, content_hash=digest)
        Estimate.objects.filter(pk=estimate.pk).update(corrected_target=normalised, corrected_by=user,
                                                       corrected_at=timezone.now(), example=example)
    estimate.refresh_from_db()
    return estimate


__all__ = ["EstimateError", "DrawingNotReady", "EstimateFailed", "TargetInvalid", "estimate_create", "estimate_correct", "estimate_messages"]
