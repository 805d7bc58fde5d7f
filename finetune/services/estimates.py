"""Estimates for new drawings by the task's active model, and expert corrections that become pending examples.

An estimate is one synchronous chat call (a person or a client waits for it): no queue, the provider's
timeout bounds it. When no model gives an answer (provider error, unreadable page image) nothing is stored
and EstimateFailed says why; an answer that breaks the schema is stored with its error kind.

Continuity: when the active model is gone (past its shutdown date, curation's one lifecycle rule) or its
provider keeps failing after the SDK's own retries, the task's fallback model (TaskFallback) answers and the
estimate records why (`answered_by`, `fallback_reason`). No active model and no usable fallback is an
EstimateError that says what to do, never a silent failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from curation.models import Drawing, Example, Task
from curation.services.base_models import lifecycle_today, model_lifecycle
from curation.services.examples import content_hash, drawing_messages
from curation.services.tasks import TargetInvalid, is_text_task, target_normalise, target_validate
from finetune.models import Estimate, ModelKind, ModelVersion, TaskFallback
from finetune.providers.base import ProviderError
from finetune.selectors import model_version_lifecycle
from finetune.services.endpoints import endpoint_prices, model_provider
from finetune.services.evals import answer_check, api_messages, call_cost, eval_prompt, model_prices
from finetune.services.few_shot import drawing_shots, messages_with_shots
from finetune.services.promotion import model_version_active, provider_tag, simulated_model_refusal

FALLBACK_HELP = (
    'promote a replacement or set the task\'s fallback model (see "When OpenAI fine-tuning ends" in the README)'
)


class EstimateError(Exception):
    """An estimate that cannot be asked (no active model, drawing not rendered); the message says what to do."""


class DrawingNotReady(EstimateError):
    pass


class EstimateFailed(EstimateError):
    """The model gave no answer (provider error, unreadable page image): nothing is stored, `kind` says which."""

    def __init__(self, message: str, *, kind: str):
        super().__init__(message)
        self.kind = kind


def _fallback_kind(model_name: str) -> str:
    lifecycle = model_lifecycle(model_name=model_name)
    if lifecycle.checkpoint:
        return ModelKind.CHECKPOINT
    return ModelKind.FINE_TUNED if lifecycle.derived else ModelKind.BASE


def _falls_back_on(error: ProviderError) -> bool:
    """A failure another model may not share: transient ones still failing after the SDK's retries (5xx,
    timeouts, rate limits), a model or deployment that is gone (404), an account refused (401/403). A 400 is
    about our request (an image, the prompt): the fallback would be sent the same and fail the same way."""
    return error.retryable or getattr(error, "http_status", None) in (401, 403, 404) or error.code == "model_not_found"


def _ask(
    estimate: Estimate,
    *,
    task: Task,
    drawing: Drawing,
    model_name: str,
    provider: str,
    prompt_text: str,
    served_name: str = "",
    endpoint=None,
    few_shot: dict | None = None,
) -> ProviderError | None:
    """One chat call; its answer, usage and cost (or error) go on `estimate`. Returns the provider's error."""
    estimate.model_name = model_name
    estimate.output, estimate.raw_output, estimate.error_kind, estimate.error = None, "", "", ""
    try:
        messages = drawing_messages(task=task, drawing=drawing, prompt_text=prompt_text)
        if few_shot:  # worked examples from the dataset version the model was evaluated with
            messages = messages_with_shots(messages, drawing_shots(config=few_shot, drawing=drawing))
        messages = api_messages(messages)
        # On Azure the model answers only through its deployment (ModelVersion.deployment_name); an endpoint
        # model through its OpenAI-compatible server.
        outcome = model_provider(provider=provider, endpoint=endpoint).chat(
            model=served_name or model_name,
            messages=messages,
            json_output=not is_text_task(task),
            temperature=0.0,
            timeout=float(getattr(settings, "EVAL_TIMEOUT_SECONDS", 120)),
        )
    except ProviderError as exc:
        estimate.error_kind, estimate.error = "api_error", f"{exc.code}: {exc.message}"
        return exc
    except Exception as exc:  # a page image that cannot be read
        estimate.error_kind, estimate.error = "input_error", f"{type(exc).__name__}: {exc}"
        return None
    kind, parsed, message = answer_check(task=task, text=outcome.text, refusal=outcome.refusal)
    estimate.output = parsed
    estimate.raw_output = outcome.text or outcome.refusal
    estimate.error_kind, estimate.error = kind, message
    estimate.latency_ms = outcome.latency_ms
    estimate.input_tokens, estimate.output_tokens = outcome.input_tokens, outcome.output_tokens
    estimate.cost_usd = call_cost(
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        prices=endpoint_prices(endpoint) if endpoint is not None else model_prices(model_name),
    )
    return None


def _ask_fallback(estimate: Estimate, *, task: Task, drawing: Drawing, fallback: TaskFallback, reason: str) -> None:
    simulated = simulated_model_refusal(task=task, provider=fallback.provider, model_name=fallback.model_name)
    if simulated:
        raise EstimateError(f"{reason} The fallback model cannot answer: {simulated}")
    kind = _fallback_kind(fallback.model_name)
    estimate.answered_by, estimate.fallback_reason = Estimate.AnsweredBy.FALLBACK, reason
    estimate.provider = provider_tag(provider=fallback.provider, kind=kind)
    _ask(
        estimate,
        task=task,
        drawing=drawing,
        model_name=fallback.model_name,
        provider=fallback.provider,
        prompt_text=fallback.prompt_text or eval_prompt(task=task, model_kind=kind)[1],
    )


def _usable_fallback(task: Task, *, reason: str, today) -> TaskFallback:
    """The task's fallback, or an EstimateError saying why the estimate cannot be answered at all."""
    fallback = TaskFallback.objects.filter(task=task).first()
    if fallback is None:
        raise EstimateError(f"{reason} Task {task.slug} has no fallback model: {FALLBACK_HELP}.")
    lifecycle = model_lifecycle(model_name=fallback.model_name)
    if lifecycle.is_shut_down(today):
        raise EstimateError(
            f"{reason} The fallback model {fallback.model_name} stopped serving on "
            f"{lifecycle.shutdown_date:%Y-%m-%d} too: {FALLBACK_HELP}."
        )
    return fallback


@dataclass(frozen=True)
class ModelChoice:
    """Which model answers for a task now."""

    version: ModelVersion | None  # the task's active model, if one is promoted
    gone: str = ""  # why the active model cannot answer ("" when it can): the fallback answers, saying so
    fallback: TaskFallback | None = None  # set (and usable) exactly when `gone` is


def estimate_model_choose(*, task: Task, today=None) -> ModelChoice:
    """The active model, or the task's usable fallback when the active model is missing or past its shutdown date.

    The one home of the refusal "no active model and no usable fallback" (an EstimateError saying what to do):
    the estimates API asks it before accepting a PDF (no minutes of rendering for nothing), `estimate_create`
    again when it asks the model (a promotion or a shutdown may have come in between).
    """
    today = today or lifecycle_today()
    version = model_version_active(task=task)
    if version is None:
        if not TaskFallback.objects.filter(task=task).exists():
            raise EstimateError(
                f"Task {task.slug} has no active model: promote an evaluated model first "
                "(or set the task's fallback model)."
            )
        gone = f"Task {task.slug} has no active model."
    else:
        lifecycle = model_version_lifecycle(version)
        if not lifecycle.is_shut_down(today):
            return ModelChoice(version=version)
        inherited = f" (the shutdown date of its base {lifecycle.base_name})" if lifecycle.derived else ""
        gone = (
            f"The active model {version.model_name} stopped serving on {lifecycle.shutdown_date:%Y-%m-%d}{inherited}."
        )
    return ModelChoice(version=version, gone=gone, fallback=_usable_fallback(task, reason=gone, today=today))


def estimate_create(*, drawing: Drawing, task: Task, user=None, estimate_id: int | None = None) -> Estimate:
    """Ask the task's active model (read now: a promotion takes effect on the next call) about a drawing;
    the task's fallback model answers when the active model is gone or its provider keeps failing.
    With `estimate_id` (a queued row, finetune/services/estimate_queue.py) the answer is saved into that row."""
    if user is not None and not user.has_perm("finetune.add_estimate"):
        raise PermissionDenied("You may not ask for estimates.")
    if task.uses_images and (drawing.status != Drawing.Status.RENDERED or not drawing.pages.exists()):
        raise DrawingNotReady(
            f"Drawing {drawing} is {drawing.status}, not rendered yet: try again when its pages exist."
        )
    today = lifecycle_today()
    choice = estimate_model_choose(task=task, today=today)
    version = choice.version
    if not choice.gone:
        simulated = simulated_model_refusal(task=task, provider=version.provider, model_name=version.model_name)
        if simulated:
            raise EstimateError(f"Estimate refused: {simulated}")
    estimate = Estimate(
        pk=estimate_id,
        task=task,
        drawing=drawing,
        model_version=version,
        created_by=user if (user is not None and user.is_authenticated) else None,
    )
    if choice.gone:
        _ask_fallback(estimate, task=task, drawing=drawing, fallback=choice.fallback, reason=choice.gone)
    else:
        estimate.provider = provider_tag(provider=version.provider, kind=version.kind)
        error = _ask(
            estimate,
            task=task,
            drawing=drawing,
            model_name=version.model_name,
            provider=version.provider,
            prompt_text=version.prompt_text,  # none recorded: the prompt examples carry
            served_name=version.served_name,
            endpoint=version.endpoint,
            few_shot=version.few_shot if version.kind == ModelKind.FEW_SHOT else None,
        )
        fallback = (
            TaskFallback.objects.filter(task=task).first() if error is not None and _falls_back_on(error) else None
        )
        if fallback is not None and not model_lifecycle(model_name=fallback.model_name).is_shut_down(today):
            _ask_fallback(
                estimate,
                task=task,
                drawing=drawing,
                fallback=fallback,
                reason=f"The active model {version.model_name} failed after the provider's retries: {estimate.error}",
            )
    if estimate.error_kind == "api_error":  # no model answered: nothing to keep
        raise EstimateFailed(f"The model {estimate.model_name} did not answer: {estimate.error}", kind="api_error")
    if estimate.error_kind == "input_error":
        raise EstimateFailed(f"The request could not be made: {estimate.error}", kind="input_error")
    if estimate_id is None:
        estimate.save()
    else:  # the answer goes into the queued row; its work fields (status, attempts, when it was asked) stay the queue's
        estimate.save(update_fields=_ANSWER_FIELDS)
    return estimate


# What an answer writes into a queued row (finetune/services/estimate_queue.py): everything but the row's own work
# fields (gestima/work.py), which the queue moves, and the time the estimate was asked.
_ANSWER_FIELDS = [
    f.name
    for f in Estimate._meta.concrete_fields
    if not f.primary_key and f.name not in {"status", "done", "total", "stage", "lease_until", "attempts", "created_at"}
]


def estimate_correct(*, estimate: Estimate, user, target_text: str) -> Estimate:
    """Validate an expert's corrected answer against the task schema; it becomes a pending Example
    (source=correction)."""
    if user is None or not user.has_perm("finetune.correct_estimate"):
        raise PermissionDenied("You may not correct estimates.")
    task = estimate.task
    value = target_validate(task=task, target_text=target_text)  # raises TargetInvalid with the failing path
    normalised = target_normalise(task=task, value=value, target_text=target_text)
    drawing = estimate.drawing
    # The example is built as examples_build makes one (the examples' prompt, not the estimate's), so the
    # same drawing and answer have the same content hash and a built example is found, not duplicated.
    messages = drawing_messages(task=task, drawing=drawing)
    digest = content_hash(messages, normalised)
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
                        task=task,
                        drawing=drawing,
                        messages=messages,
                        target=normalised,
                        schema_version=task.schema_version,
                        status=Example.Status.PENDING,
                        source=Example.Source.CORRECTION,
                        tags=tags,
                        group_key=drawing.part_number or f"drawing-{drawing.pk}",
                        content_hash=digest,
                        review_note=f"Correction of estimate {estimate.pk} ({estimate.model_name}).",
                    )
            except IntegrityError:
                example = Example.objects.get(task=task, content_hash=digest)
        Estimate.objects.filter(pk=estimate.pk).update(
            corrected_target=normalised, corrected_by=user, corrected_at=timezone.now(), example=example
        )
    estimate.refresh_from_db()
    return estimate


__all__ = ["EstimateError", "DrawingNotReady", "EstimateFailed", "TargetInvalid", "estimate_create", "estimate_correct"]
