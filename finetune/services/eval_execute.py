"""Executing an evaluation run (one RQ job, a bounded thread pool for the API calls), one answer per example.

Concurrency lives in one job: a pool of EVAL_CONCURRENCY threads embeds the page images (file reads,
no database) and makes the HTTP calls; the job's own thread hands out examples and writes every
result, so the database sees one writer per run (SQLite-safe) and the number of requests in flight is
exactly the setting. A result row is unique per (run, example): a resumed run asks only examples
without one, so done examples are never paid twice.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from curation.models import DatasetMember
from curation.openai_format import messages_with_prompt, resolve_image_refs
from curation.services.page_images import PageImages
from curation.services.tasks import is_text_task
from finetune.models import EvalResult, EvalRun, ModelKind
from finetune.providers.base import ProviderError
from finetune.services.endpoints import endpoint_prices, model_provider
from finetune.services.eval_results import eval_run_fail, eval_run_finish, eval_run_recount
from finetune.services.evals import answer_check, call_cost, model_prices
from finetune.services.few_shot import eval_run_shots, messages_with_shots

logger = logging.getLogger(__name__)


def _setting(name: str, default):
    return getattr(settings, name, default)


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
        return provider.chat(
            model=model, messages=messages, json_output=json_output, temperature=0.0, timeout=timeout
        ), None
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
        fields.update(
            status=EvalResult.Status.ERROR,
            error_kind=EvalResult.ErrorKind.API_ERROR,
            error_message=f"{code}: {getattr(error, 'message', None) or error}",
            cost_usd=Decimal(0),
        )
    else:
        kind, parsed, message = answer_check(task=run.task, text=outcome.text, refusal=outcome.refusal)
        fields.update(
            status=EvalResult.Status.ERROR if kind else EvalResult.Status.OK,
            raw_output=outcome.text or outcome.refusal,
            parsed=parsed,
            error_kind=kind,
            error_message=message,
            latency_ms=outcome.latency_ms,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
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
            eval_run_recount(self.run)


def eval_run_execute(*, eval_run: EvalRun) -> EvalRun:
    """Claim the run, ask every example that has no result yet, then compute the metrics. Idempotent."""
    now = timezone.now()
    claimed = EvalRun.objects.filter(pk=eval_run.pk, status=EvalRun.Status.QUEUED).update(
        status=EvalRun.Status.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
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
        members = (
            DatasetMember.objects.filter(version_id=run.dataset_version_id, split=run.split)
            .exclude(example_id__in=done)
            .only("id", "example_id", "messages", "position")
            .order_by("position", "id")
        )
        eval_run_recount(run)
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
                chunk = members[start : start + 50]
                pages = _pages_for(chunk).joined(shot_pages)
                for member in chunk:
                    # At most 2 × width submitted: the pool never idles, and images are embedded by the
                    # thread that sends them, so memory holds only the requests in flight.
                    while len(in_flight) >= 2 * width:
                        _drain(run, in_flight, prices, writer)
                    messages = messages_with_prompt(member.messages, run.prompt_text)
                    if shots is not None:
                        messages = messages_with_shots(messages, shots.get(member.example_id, []))
                    future = pool.submit(
                        _ask,
                        provider,
                        model=run.served_name,
                        pages=pages,
                        json_output=json_output,
                        messages=messages,
                        timeout=timeout,
                    )
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
