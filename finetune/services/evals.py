"""Evaluation runs before and around their job: how a model is asked and priced (prompt by model kind, page
images, prices, answer check), whether the examples are unseen, and queuing a run (create, evaluate a training
run, resume, reconcile). The job itself is `eval_execute.py`; its stored results and end, `eval_results.py`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from curation.models import BaseModel, DatasetMember, DatasetVersion, Task
from curation.services.page_images import messages_with_images
from curation.services.tasks import TargetNotJSON, TargetSchemaMismatch, target_validate
from finetune.models import EvalResult, EvalRun, ModelKind
from finetune.providers.base import ProviderError, available_providers, get_provider
from finetune.selectors import eval_run_train_overlap, training_run_for_model
from finetune.services.endpoints import COMPATIBLE, EndpointError, endpoint_check
from finetune.services.few_shot import FewShotError, few_shot_config
from gestima.progress import Progress
from gestima.queues import QueueUnavailable, enqueue_on_commit, job_is_pending

logger = logging.getLogger(__name__)


class EvalError(Exception):
    """An evaluation that cannot be created or resumed; the message says why."""


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- prompts and messages ---------------------------------------------------------------------
def eval_prompt(*, task: Task, model_kind: str) -> tuple[str, str]:
    """(prompt kind, system prompt): fine-tuned models and checkpoints learnt the compact prompt, base models need the
    full one."""
    if model_kind in (ModelKind.FINE_TUNED, ModelKind.CHECKPOINT) and task.compact_prompt:
        return EvalRun.PromptKind.COMPACT, task.compact_prompt
    return EvalRun.PromptKind.FULL, task.system_prompt


def api_messages(messages: list[dict]) -> list[dict]:
    """Page references (`page:<id>`) replaced by base64 data URLs, the way the API needs them."""
    return messages_with_images(messages)


def fine_tuned_base_name(model_name: str) -> str | None:
    """The base model a fine-tuned model or checkpoint was made from: OpenAI's `ft:BASE:org:suffix:id[:ckpt-step-N]`
    or Azure's `BASE.ft-<hex>[-ckpt...]` -> BASE."""
    if model_name.startswith("ft:") and model_name.count(":") >= 2:
        return model_name.split(":")[1] or None
    if ".ft-" in model_name:
        return model_name.split(".ft-", 1)[0] or None
    return None


def model_prices(model_name: str) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per 1M tokens from the editable BaseModel table, or None when unknown.

    A fine-tuned model (or checkpoint) is priced at its base's fine-tuned prices, not the base's own, whether
    named by OpenAI (`ft:BASE:...`), by Azure (`BASE.ft-...`) or by the Azure deployment that serves it.
    """
    from finetune.selectors import training_run_for_deployment

    base = fine_tuned_base_name(model_name)
    if base is None:
        deployed = training_run_for_deployment(model_name)
        if deployed is not None:
            base = fine_tuned_base_name(deployed.fine_tuned_model) or deployed.base_model.name
    fields = (
        ("fine_tuned_input_price_per_1m", "fine_tuned_output_price_per_1m")
        if base
        else ("input_price_per_1m", "output_price_per_1m")
    )
    name = base or model_name
    row = BaseModel.objects.filter(name=name).values(*fields).first()
    if row is None and base:
        # ft:gpt-4o-mini:... names an undated base: its one dated row (gpt-4o-mini-2024-07-18), if unambiguous.
        rows = list(BaseModel.objects.filter(name__startswith=f"{base}-").values(*fields)[:2])
        row = rows[0] if len(rows) == 1 else None
    if row is None or row[fields[0]] is None or row[fields[1]] is None:
        return None
    return Decimal(row[fields[0]]), Decimal(row[fields[1]])


def call_cost(*, input_tokens: int, output_tokens: int, prices: tuple[Decimal, Decimal] | None) -> Decimal | None:
    """USD of one call, or None when the model's prices are unknown (shown as "unknown", never $0)."""
    if prices is None:
        return None
    return (Decimal(input_tokens) * prices[0] + Decimal(output_tokens) * prices[1]) / Decimal(1_000_000)


def answer_check(*, task: Task, text: str, refusal: str = "") -> tuple[str, object, str]:
    """(error kind, parsed value, message) for one answer: refusal, invalid JSON, schema mismatch or ok ("")."""
    if refusal:
        return EvalResult.ErrorKind.REFUSAL, None, refusal
    try:
        return "", target_validate(task=task, target_text=text), ""
    except TargetNotJSON as exc:
        return EvalResult.ErrorKind.INVALID_JSON, None, str(exc)
    except TargetSchemaMismatch as exc:
        return EvalResult.ErrorKind.SCHEMA_MISMATCH, exc.value, str(exc)


# --- leaks ------------------------------------------------------------------------------------
LEAKS = "leaks training data"


def eval_run_leak(eval_run: EvalRun) -> str:
    """'' or why the eval's examples are not unseen: the train split, or examples the linked training run
    trained on (from another dataset version). Such numbers flatter the model and cannot promote it."""
    if eval_run.split == DatasetMember.Split.TRAIN:
        return f"{LEAKS}: evaluated on the train split of {eval_run.dataset_version}, which fine-tuning learns from"
    run = eval_run.training_run
    if (
        run is not None
        and eval_run.model_kind != ModelKind.BASE
        and run.dataset_version_id != eval_run.dataset_version_id
    ):
        seen = eval_run_train_overlap(eval_run)
        if seen:
            return (
                f"{LEAKS}: {seen} of the evaluated examples were in the train split of "
                f"{run.dataset_version}, which training run {run.pk} learnt from"
            )
    return ""


# --- create / resume --------------------------------------------------------------------------
EXECUTE_JOB = "finetune.jobs.eval_run_execute_job"
EXECUTE_FAILED_HOOK = "finetune.jobs.eval_run_job_failed"


def _enqueue(run: EvalRun) -> None:
    from rq import Callback

    # The queue's default timeout (an hour) would kill a large run midway; allow a minute per example per
    # slot on top of ten minutes. A run killed anyway fails with the reason and resumes where it stopped.
    timeout = 600 + int(60 * max(run.total, 1) / max(run.concurrency, 1))
    enqueue_on_commit(
        "openai",
        EXECUTE_JOB,
        run.pk,
        job_id=run.rq_job_id,
        on_failure=Callback(EXECUTE_FAILED_HOOK),
        job_timeout=max(timeout, 3600),
    )


def eval_deployment_name(
    *, provider: str, model_name: str, model_kind: str, training_run=None, deployment_name: str = ""
) -> str:
    """The deployment the calls go to, '' where the provider calls models by name (OpenAI).

    On Azure every model answers only through a deployment: a fine-tuned model through its run's deployment
    (created or recorded on the run page), refused when it has none (every call would answer
    DeploymentNotFound); a base model through a deployment named after it unless one is given.
    """
    if deployment_name or not getattr(get_provider(provider), "needs_deployment", False):
        return deployment_name
    if model_kind == ModelKind.BASE:
        return model_name
    from finetune.selectors import training_run_for_deployment

    if training_run_for_deployment(model_name) is not None:
        return model_name  # the name given is the deployment itself
    if training_run is not None and training_run.deployment_name and model_name == training_run.fine_tuned_model:
        if training_run.deployment_state in ("Succeeded", "Recorded"):
            return training_run.deployment_name
        raise EvalError(
            f"The deployment {training_run.deployment_name} of {model_name} is "
            f"{training_run.deployment_state or 'not ready'}: evaluate once it has succeeded."
        )
    where = f" (run {training_run.pk}'s page: Create deployment, or Record deployment)" if training_run else ""
    raise EvalError(
        f"On {provider} {model_name} answers only through a deployment, and it has none{where}. Deploy it first."
    )


def eval_run_create(
    *,
    task: Task,
    model_name: str,
    model_kind: str,
    provider: str = "",
    dataset_version: DatasetVersion,
    split: str = "validation",
    user=None,
    training_run=None,
    concurrency: int | None = None,
    deployment_name: str = "",
    endpoint=None,
    few_shot_k: int | None = None,
) -> EvalRun:
    """Record an eval run (prompt chosen by model kind) and queue its job; QueueUnavailable leaves nothing behind.

    The provider follows the model when not given (`provider_for_model`): a fine-tuned model of an Azure run
    is evaluated on Azure, through its deployment. `endpoint`: an OpenAI-compatible ModelEndpoint (provider
    "compatible", model name from the endpoint when none is given). `few_shot_k`: shots per question for a
    few-shot model (default FEW_SHOT_K).
    """
    from finetune.selectors import provider_for_model, training_run_for_deployment

    if user is not None and not user.has_perm("finetune.run_eval"):
        raise PermissionDenied("You may not start evaluations.")
    # --- endpoints and few-shot (finetune/services/endpoints.py, few_shot.py) ---
    model_name, provider, few_shot = _endpoint_and_few_shot(
        model_name=model_name,
        model_kind=model_kind,
        provider=provider,
        endpoint=endpoint,
        dataset_version=dataset_version,
        split=split,
        few_shot_k=few_shot_k,
    )
    model_name = (model_name or "").strip()
    if not model_name:
        raise EvalError("A model name is required.")
    provider = provider or provider_for_model(model_name)
    if model_kind not in ModelKind.values:
        raise EvalError(f"Unknown model kind {model_kind!r}; one of {', '.join(ModelKind.values)}.")
    if provider not in available_providers():
        raise EvalError(f"Unknown provider {provider!r}; known: {', '.join(available_providers())}.")
    if dataset_version.dataset.task_id != task.pk:
        raise EvalError(f"{dataset_version} belongs to task {dataset_version.dataset.task}, not {task}.")
    total = DatasetMember.objects.filter(version=dataset_version, split=split).count()
    if not total:
        raise EvalError(f"{dataset_version} has no {split} examples.")
    if training_run is None and model_kind in (ModelKind.FINE_TUNED, ModelKind.CHECKPOINT):
        # A model name the provider gave one of our runs: the lineage is known, link it.
        training_run, _ = training_run_for_model(model_name)
        training_run = training_run or training_run_for_deployment(model_name)
    if endpoint is None:
        try:
            deployment_name = eval_deployment_name(
                provider=provider,
                model_name=model_name,
                model_kind=model_kind,
                training_run=training_run,
                deployment_name=deployment_name.strip(),
            )
        except ProviderError as exc:
            raise EvalError(exc.message)
    prompt_kind, prompt_text = eval_prompt(task=task, model_kind=model_kind)
    with transaction.atomic():
        run = EvalRun.objects.create(
            task=task,
            model_name=model_name,
            model_kind=model_kind,
            provider=provider,
            dataset_version=dataset_version,
            deployment_name=deployment_name if endpoint is None else "",
            split=split,
            training_run=training_run,
            prompt_kind=prompt_kind,
            prompt_text=prompt_text,
            total=total,
            endpoint=endpoint,
            few_shot=few_shot,
            concurrency=max(1, concurrency or settings.EVAL_CONCURRENCY),
            created_by=user if (user is not None and user.is_authenticated) else None,
        )
        run.rq_job_id = f"eval-run-{run.pk}-1"
        run.save(update_fields=["rq_job_id"])
        _enqueue(run)
    return run


def _endpoint_and_few_shot(*, model_name, model_kind, provider, endpoint, dataset_version, split, few_shot_k):
    """(model name, provider, few-shot config) once an endpoint and a few-shot kind are taken into account."""
    if endpoint is not None:
        try:
            endpoint_check(endpoint)
        except EndpointError as exc:
            raise EvalError(str(exc)) from exc
        provider, model_name = COMPATIBLE, (model_name or "").strip() or endpoint.model_name
    elif provider == COMPATIBLE:
        raise EvalError("The compatible provider needs a model endpoint: choose one (--endpoint NAME).")
    few_shot = {}
    if model_kind == ModelKind.FEW_SHOT:
        try:
            few_shot = few_shot_config(dataset_version=dataset_version, split=split, k=few_shot_k)
        except FewShotError as exc:
            raise EvalError(str(exc)) from exc
    return model_name, provider, few_shot


def training_run_evaluate(*, run, user=None, concurrency: int | None = None) -> tuple[list[EvalRun], int]:
    """Evaluate what a succeeded training run made: its base model and its fine-tuned model, each on the
    validation split of the dataset version it trained on, both linked to the run (lineage is read from it).

    Returns ([base eval, fine-tuned eval], how many were created now): an eval run that already exists for
    the run (a second click) is reused, never paid for twice; a failed one is resumed from its page.
    """
    from finetune.models import TrainingRun

    if user is not None and not user.has_perm("finetune.run_eval"):
        raise PermissionDenied("You may not start evaluations.")
    run = TrainingRun.objects.select_related("base_model", "dataset_version__dataset__task").get(pk=run.pk)
    if run.status != TrainingRun.Status.SUCCEEDED or not run.fine_tuned_model:
        raise EvalError(
            f"Run {run.pk} is {run.status_label}: only a succeeded run with a fine-tuned model can be evaluated."
        )
    version = run.dataset_version
    split = DatasetMember.Split.VALIDATION
    if not DatasetMember.objects.filter(version=version, split=split).exists():
        raise EvalError(
            f"{version} has no validation examples: the run's model cannot be evaluated on examples it "
            "did not train on. Build a version with a validation fraction above 0."
        )
    wanted = [(run.base_model.name, ModelKind.BASE), (run.fine_tuned_model, ModelKind.FINE_TUNED)]
    runs, created = [], 0
    with transaction.atomic():
        # Lock the training run: two clicks at once make one pair.
        TrainingRun.objects.select_for_update().filter(pk=run.pk).first()
        for model_name, kind in wanted:
            existing = (
                EvalRun.objects.filter(
                    training_run=run, model_name=model_name, model_kind=kind, dataset_version=version, split=split
                )
                .order_by("pk")
                .first()
            )
            if existing is not None:
                runs.append(existing)
                continue
            runs.append(
                eval_run_create(
                    task=version.dataset.task,
                    model_name=model_name,
                    model_kind=kind,
                    provider=run.provider,
                    dataset_version=version,
                    split=split,
                    user=user,
                    training_run=run,
                    concurrency=concurrency,
                )
            )
            created += 1
    return runs, created


def eval_run_is_stale(run: EvalRun) -> bool:
    """A running run whose worker stopped beating (killed, machine gone) can be resumed."""
    stale_after = timedelta(seconds=_setting("EVAL_STALE_SECONDS", 300))
    last = run.heartbeat_at or run.started_at or run.created_at
    return last is None or timezone.now() - last > stale_after


def eval_run_resume(*, eval_run: EvalRun, user=None) -> EvalRun:
    """Queue a failed or interrupted run again; it asks only the examples that have no result yet."""
    if user is not None and not user.has_perm("finetune.run_eval"):
        raise PermissionDenied("You may not resume evaluations.")
    run = EvalRun.objects.get(pk=eval_run.pk)
    if run.status == EvalRun.Status.DONE:
        raise EvalError(f"Eval run {run.pk} is done; nothing to resume.")
    pending = bool(run.rq_job_id) and job_is_pending(queue_name="openai", job_id=run.rq_job_id)
    if pending and not (run.status == EvalRun.Status.RUNNING and eval_run_is_stale(run)):
        raise EvalError(f"Eval run {run.pk} is still queued or running.")
    if run.status == EvalRun.Status.RUNNING and not eval_run_is_stale(run):
        raise EvalError(
            f"Eval run {run.pk} is running; it can be resumed once its worker has been silent for "
            f"{_setting('EVAL_STALE_SECONDS', 300)} s."
        )
    with transaction.atomic():
        attempt = run.attempts + 1
        # A new job id: the old one may still sit in RQ's started registry after its worker died.
        updated = EvalRun.objects.filter(pk=run.pk, status=run.status).update(
            status=EvalRun.Status.QUEUED, error="", rq_job_id=f"eval-run-{run.pk}-{attempt + 1}"
        )
        if not updated:
            raise EvalError(f"Eval run {run.pk} changed meanwhile; try again.")
        run.refresh_from_db()
        _enqueue(run)
    return run


def eval_runs_reconcile() -> list[int]:
    """Queue again the runs left behind; returns their ids. Run periodically (finetune.jobs.eval_runs_reconcile_job).

    Two cases: `queued` with no job in Redis (Redis was away when the run was committed), and
    `running` whose worker stopped beating (killed). Either resumes where the results stop.
    """
    resumed = []
    grace = timezone.now() - timedelta(seconds=60)  # a run committed a moment ago is being enqueued now
    candidates = EvalRun.objects.filter(status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING])
    for run in candidates:
        if run.status == EvalRun.Status.QUEUED and run.created_at > grace:
            continue
        if run.status == EvalRun.Status.RUNNING and not eval_run_is_stale(run):
            continue
        try:
            eval_run_resume(eval_run=run)
        except (EvalError, QueueUnavailable) as exc:
            logger.info("eval run %s not resumed: %s", run.pk, exc)
            continue
        resumed.append(run.pk)
    return resumed


def eval_run_progress(run: EvalRun) -> Progress:
    """Examples asked of the run's total (answered or failed, both are done): the eval page, its live JSON and the
    dashboard show this one."""
    done = run.done_count + run.error_count
    return Progress(f"{done} / {run.total}", 100 * done // run.total if run.total else 0)
