"""Evaluation runs: create, execute (one RQ job, a bounded thread pool for the API calls), resume, finish.

Concurrency lives in one job: a pool of EVAL_CONCURRENCY threads embeds the page images (file reads,
no database) and makes the HTTP calls; the job's own thread hands out examples and writes every
result, so the database sees one writer per run (SQLite-safe) and the number of requests in flight is
exactly the setting. A result row is unique per (run, example): a resumed run asks only examples
without one, so done examples are never paid twice.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from curation.models import BaseModel, DatasetMember, DatasetVersion, Task
from curation.openai_format import messages_with_prompt, resolve_image_refs
from curation.services.page_images import PageImages, messages_with_images
from curation.services.tasks import (
    TargetNotJSON,
    TargetSchemaMismatch,
    is_text_task,
    target_validate,
)
from finetune import metrics as metric_lib
from finetune.models import EvalResult, EvalRun, ModelKind
from finetune.providers.base import ProviderError, available_providers, get_provider
from finetune.selectors import eval_run_train_overlap, training_run_for_model
from finetune.services.endpoints import COMPATIBLE, EndpointError, endpoint_check, endpoint_prices, model_provider
from finetune.services.few_shot import FewShotError, eval_run_shots, few_shot_config, messages_with_shots
from gestima.queues import QueueUnavailable, enqueue_on_commit, job_is_pending

logger = logging.getLogger(__name__)


class EvalError(Exception):
    """An evaluation that cannot be created or resumed; the message says why."""


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- prompts and messages ---------------------------------------------------------------------
def eval_prompt(*, task: Task, model_kind: str) -> tuple[str, str]:
    """(prompt kind, system prompt): fine-tuned models and checkpoints learnt the compact prompt, base models need the full one."""
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
    fields = ("fine_tuned_input_price_per_1m", "fine_tuned_output_price_per_1m") if base else (
        "input_price_per_1m", "output_price_per_1m")
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
    if run is not None and eval_run.model_kind != ModelKind.BASE and run.dataset_version_id != eval_run.dataset_version_id:
        seen = eval_run_train_overlap(eval_run)
        if seen:
            return (f"{LEAKS}: {seen} of the evaluated examples were in the train split of "
                    f"{run.dataset_version}, which training run {run.pk} learnt from")
    return ""


# --- create / resume --------------------------------------------------------------------------
EXECUTE_JOB = "finetune.jobs.eval_run_execute_job"
EXECUTE_FAILED_HOOK = "finetune.jobs.eval_run_job_failed"


def _enqueue(run: EvalRun) -> None:
    from rq import Callback

    # The queue's default timeout (an hour) would kill a large run midway; allow a minute per example per
    # slot on top of ten minutes. A run killed anyway fails with the reason and resumes where it stopped.
    timeout = 600 + int(60 * max(run.total, 1) / max(run.concurrency, 1))
    enqueue_on_commit("openai", EXECUTE_JOB, run.pk, job_id=run.rq_job_id, on_failure=Callback(EXECUTE_FAILED_HOOK),
                      job_timeout=max(timeout, 3600))


def eval_deployment_name(*, provider: str, model_name: str, model_kind: str, training_run=None,
                         deployment_name: str = "") -> str:
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
        raise EvalError(f"The deployment {training_run.deployment_name} of {model_name} is "
                        f"{training_run.deployment_state or 'not ready'}: evaluate once it has succeeded.")
    where = f" (run {training_run.pk}'s page: Create deployment, or Record deployment)" if training_run else ""
    raise EvalError(f"On {provider} {model_name} answers only through a deployment, and it has none{where}. "
                    "Deploy it first.")


def eval_run_create(*, task: Task, model_name: str, model_kind: str, provider: str = "",
                    dataset_version: DatasetVersion, split: str = "validation", user=None, training_run=None,
                    concurrency: int | None = None, deployment_name: str = "", endpoint=None,
                    few_shot_k: int | None = None) -> EvalRun:
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
        model_name=model_name, model_kind=model_kind, provider=provider, endpoint=endpoint,
        dataset_version=dataset_version, split=split, few_shot_k=few_shot_k)
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
            deployment_name = eval_deployment_name(provider=provider, model_name=model_name, model_kind=model_kind,
                                                   training_run=training_run, deployment_name=deployment_name.strip())
        except ProviderError as exc:
            raise EvalError(exc.message)
    prompt_kind, prompt_text = eval_prompt(task=task, model_kind=model_kind)
    with transaction.atomic():
        run = EvalRun.objects.create(
            task=task, model_name=model_name, model_kind=model_kind, provider=provider, dataset_version=dataset_version,
            deployment_name=deployment_name if endpoint is None else "",
            split=split, training_run=training_run, prompt_kind=prompt_kind, prompt_text=prompt_text, total=total,
            endpoint=endpoint, few_shot=few_shot,
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
        raise EvalError(f"Run {run.pk} is {run.status_label}: only a succeeded run with a fine-tuned model can be "
                        "evaluated.")
    version = run.dataset_version
    split = DatasetMember.Split.VALIDATION
    if not DatasetMember.objects.filter(version=version, split=split).exists():
        raise EvalError(f"{version} has no validation examples: the run's model cannot be evaluated on examples it "
                        "did not train on. Build a version with a validation fraction above 0.")
    wanted = [(run.base_model.name, ModelKind.BASE), (run.fine_tuned_model, ModelKind.FINE_TUNED)]
    runs, created = [], 0
    with transaction.atomic():
        # Lock the training run: two clicks at once make one pair.
        TrainingRun.objects.select_for_update().filter(pk=run.pk).first()
        for model_name, kind in wanted:
            existing = EvalRun.objects.filter(training_run=run, model_name=model_name, model_kind=kind,
                                              dataset_version=version, split=split).order_by("pk").first()
            if existing is not None:
                runs.append(existing)
                continue
            runs.append(eval_run_create(task=version.dataset.task, model_name=model_name, model_kind=kind,
                                        provider=run.provider, dataset_version=version, split=split, user=user,
                                        training_run=run, concurrency=concurrency))
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
        raise EvalError(f"Eval run {run.pk} is running; it can be resumed once its worker has been silent for "
                        f"{_setting('EVAL_STALE_SECONDS', 300)} s.")
    with transaction.atomic():
        attempt = run.attempts + 1
        # A new job id: the old one may still sit in RQ's started registry after its worker died.
        updated = EvalRun.objects.filter(pk=run.pk, status=run.status).update(
            status=EvalRun.Status.QUEUED, error="", rq_job_id=f"eval-run-{run.pk}-{attempt + 1}")
        if not updated:
            raise EvalError(f"Eval run {run.pk} changed meanwhile; try again.")
        run.refresh_from_db()
        _enqueue(run)
    return run


# --- execute ----------------------------------------------------------------------------------
def _pages_for(members: list[DatasetMember]) -> PageImages:
    """The page rows a chunk of members refers to, in one query (the threads then only read files)."""
    return PageImages.of_messages(m.messages for m in members)


def _shot_pages(shots: dict | None) -> PageImages:
    """The page rows the few-shot examples refer to (each shot's pages are shared by many questions)."""
    return PageImages.of_messages(shot["messages"] for chosen in (shots or {}).values() for shot in chosen)


def _ask(provider, *, model: str, messages: list[dict], pages: PageImages, json_output: bool, timeout: float):
    """Runs in a pool thread: embed the page images (file reads + base64, no database), then one chat call."""
    try:
        messages = resolve_image_refs(messages, pages.load)
    except Exception as exc:  # a page image gone or changed: this example fails, the run goes on
        return None, ProviderError(f"input: {exc}", code="input_error")
    try:
        return provider.chat(model=model, messages=messages, json_output=json_output, temperature=0.0, timeout=timeout), None
    except ProviderError as exc:
        return None, exc
    except Exception as exc:  # a bug or an odd response must cost one example, not the run
        logger.exception("chat call failed")
        return None, ProviderError(f"{type(exc).__name__}: {exc}", code="unexpected")


def _result(run: EvalRun, member: DatasetMember, outcome, error: Exception | None, prices) -> EvalResult:
    """The row for one answer (not saved: results are written in small batches, see _Writer)."""
    fields = {"eval_run": run, "member": member, "example_id": member.example_id}
    if error is not None:
        code = getattr(error, "code", "") or type(error).__name__
        fields.update(status=EvalResult.Status.ERROR, error_kind=EvalResult.ErrorKind.API_ERROR,
                      error_message=f"{code}: {getattr(error, 'message', None) or error}", cost_usd=Decimal(0))
    else:
        kind, parsed, message = answer_check(task=run.task, text=outcome.text, refusal=outcome.refusal)
        fields.update(
            status=EvalResult.Status.ERROR if kind else EvalResult.Status.OK,
            raw_output=outcome.text or outcome.refusal, parsed=parsed, error_kind=kind, error_message=message,
            latency_ms=outcome.latency_ms, input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens,
            cost_usd=call_cost(input_tokens=outcome.input_tokens, output_tokens=outcome.output_tokens, prices=prices),
        )
    return EvalResult(**fields)


class _Writer:
    """Writes results in one transaction per batch (at most `size` rows or `seconds` old).

    One commit per answer costs ~15 ms on SQLite (fsync) and would throttle the pool; a batch bounds
    what a killed worker loses (answers paid but not stored, asked again on resume) to about a second.
    """

    def __init__(self, run: EvalRun, *, size: int, seconds: float):
        self.run, self.size, self.seconds = run, size, seconds
        self.buffer: list[EvalResult] = []
        self.last = time.monotonic()

    def add(self, result: EvalResult) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= self.size or time.monotonic() - self.last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if not self.buffer:
            return
        rows, self.buffer = self.buffer, []
        with transaction.atomic():
            # A row another worker stored first is kept (unique per run and example).
            EvalResult.objects.bulk_create(rows, ignore_conflicts=True)
            _recount(self.run)


def eval_run_execute(*, eval_run: EvalRun) -> EvalRun:
    """Claim the run, ask every example that has no result yet, then compute the metrics. Idempotent."""
    now = timezone.now()
    claimed = EvalRun.objects.filter(pk=eval_run.pk, status=EvalRun.Status.QUEUED).update(
        status=EvalRun.Status.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1)
    run = EvalRun.objects.select_related("task").get(pk=eval_run.pk)
    if not claimed:
        return run  # done, or another worker has it
    try:
        provider = model_provider(provider=run.provider, endpoint=run.endpoint)
        prepare = getattr(provider, "chat_prepare", None)
        if prepare is not None:
            prepare()  # one client for the whole pool, built before the threads start
        # API errors cost nothing and may be transient: a rerun asks those examples again.
        EvalResult.objects.filter(eval_run=run, error_kind=EvalResult.ErrorKind.API_ERROR).delete()
        done = set(EvalResult.objects.filter(eval_run=run).values_list("example_id", flat=True))
        members = (DatasetMember.objects.filter(version_id=run.dataset_version_id, split=run.split)
                   .exclude(example_id__in=done).only("id", "example_id", "messages", "position")
                   .order_by("position", "id"))
        _recount(run)
        prices = endpoint_prices(run.endpoint) if run.endpoint_id else model_prices(run.model_name)
        # Few-shot: every question's worked examples, chosen once before any call; their pages join each chunk's.
        shots = eval_run_shots(eval_run=run) if run.model_kind == ModelKind.FEW_SHOT else None
        shot_pages = _shot_pages(shots)
        json_output = not is_text_task(run.task)
        timeout = float(_setting("EVAL_TIMEOUT_SECONDS", 120))
        width = max(1, run.concurrency)
        writer = _Writer(run, size=width, seconds=float(_setting("EVAL_FLUSH_SECONDS", 1.0)))
        in_flight = {}
        members = list(members)
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"eval{run.pk}") as pool:
            for start in range(0, len(members), 50):
                chunk = members[start:start + 50]
                pages = _pages_for(chunk).joined(shot_pages)
                for member in chunk:
                    # At most 2 × width submitted: the pool never idles, and images are embedded by the
                    # thread that sends them, so memory holds only the requests in flight.
                    while len(in_flight) >= 2 * width:
                        _drain(run, in_flight, prices, writer)
                    messages = messages_with_prompt(member.messages, run.prompt_text)
                    if shots is not None:
                        messages = messages_with_shots(messages, shots.get(member.example_id, []))
                    future = pool.submit(_ask, provider, model=run.served_name, pages=pages, json_output=json_output,
                                         messages=messages, timeout=timeout)
                    in_flight[future] = member
            while in_flight:
                _drain(run, in_flight, prices, writer)
        writer.flush()
    except Exception as exc:
        eval_run_fail(eval_run_id=run.pk, error=f"{type(exc).__name__}: {exc}")
        raise
    return eval_run_finish(eval_run=run)


def _drain(run, in_flight: dict, prices, writer: _Writer) -> None:
    finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED, timeout=writer.seconds)
    for future in finished:
        member = in_flight.pop(future)
        outcome, error = future.result()
        writer.add(_result(run, member, outcome, error, prices))
    if not finished:
        writer.flush()  # nothing came back for a while: store what is waiting


def _recount(run: EvalRun) -> None:
    """Progress counters (and the heartbeat a resume looks at) from the stored results."""
    results = EvalResult.objects.filter(eval_run=run)
    EvalRun.objects.filter(pk=run.pk).update(
        done_count=results.filter(status=EvalResult.Status.OK).count(),
        error_count=results.filter(status=EvalResult.Status.ERROR).count(),
        heartbeat_at=timezone.now(),
    )


def eval_run_records(eval_run: EvalRun) -> list[dict]:
    """The run's results in the shape finetune.metrics expects (targets from the frozen members)."""
    task = eval_run.task
    text_task = is_text_task(task)
    records = []
    results = (EvalResult.objects.filter(eval_run=eval_run)
               .select_related("member", "example").order_by("example_id"))
    for result in results:
        target_text = result.member.target if result.member_id else result.example.target
        if text_task:
            target = target_text
        else:
            try:
                target = json.loads(target_text)
            except ValueError:
                target = None
        json_valid = result.error_kind not in (EvalResult.ErrorKind.REFUSAL, EvalResult.ErrorKind.INVALID_JSON,
                                               EvalResult.ErrorKind.API_ERROR)
        records.append({
            "id": result.example_id, "target": target, "output": result.parsed if json_valid else None,
            "json_valid": json_valid, "schema_valid": result.error_kind == "" and result.status == EvalResult.Status.OK,
            "error_kind": result.error_kind, "tags": result.example.tags or {},
        })
    return records


def eval_run_finish(*, eval_run: EvalRun) -> EvalRun:
    """Totals and metrics from the stored results; the run is done."""
    run = EvalRun.objects.select_related("task").get(pk=eval_run.pk)
    records = eval_run_records(run)
    computed = metric_lib.run_metrics(records, run.task.metric_spec or {},
                                      n_boot=int(_setting("EVAL_BOOTSTRAP_SAMPLES", 1000)))
    results = EvalResult.objects.filter(eval_run=run)
    totals = results.aggregate(cost=Sum("cost_usd"), inp=Sum("input_tokens"), out=Sum("output_tokens"))
    # One answer without a price makes the total unknown: a partial sum would look like the whole cost.
    cost_known = not results.filter(cost_usd__isnull=True).exists()
    _recount(run)
    answered = results.exclude(error_kind=EvalResult.ErrorKind.API_ERROR).count()
    status, error = EvalRun.Status.DONE, ""
    if run.total and not answered:
        # Metrics of zero answers would read as a model that answered nothing right; it was never reached.
        status, error = EvalRun.Status.FAILED, _nothing_answered(results)
    EvalRun.objects.filter(pk=run.pk).update(
        status=status, metrics=computed, cost_usd=(totals["cost"] or 0) if cost_known else None,
        input_tokens=totals["inp"] or 0,
        output_tokens=totals["out"] or 0, finished_at=timezone.now(), error=error,
    )
    run.refresh_from_db()
    return run


def _nothing_answered(results) -> str:
    """Why an eval run in which no example was answered failed: the commonest API error, with its count."""
    from collections import Counter

    errors = Counter(results.values_list("error_message", flat=True))
    if not errors:
        return "No example was answered."
    message, count = errors.most_common(1)[0]
    return (f"No example was answered: {count} of {sum(errors.values())} calls failed with {message}. "
            "Fix the cause, then resume the run (it asks only the examples without an answer).")


def eval_run_fail(*, eval_run_id: int, error: str) -> None:
    """The run stopped (worker error, provider not configured): say why on the row; resume continues it."""
    EvalRun.objects.filter(pk=eval_run_id).exclude(status=EvalRun.Status.DONE).update(
        status=EvalRun.Status.FAILED, error=error[:5000], finished_at=timezone.now())


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
