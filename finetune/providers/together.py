"""Together AI through the official `together` SDK (3.x): files, fine-tuning jobs (LoRA or full) and chat.

A second trainer for vision beside OpenAI: the same chat JSONL with base64 images, other models
(Qwen3-VL, Gemma 3, Llama 4). What differs from the OpenAI path, and how it is handled here:

- No job metadata and no idempotency key: our run id travels in the job's suffix (`...-gr<run id>`), and
  `find_job` lists the jobs and matches it. A create whose answer is lost is found again by the service
  (services/run_start.py looks the job up before creating one and after every ambiguous failure).
- `fine_tuning.create` is three requests in the SDK: the model's limits, a price estimate, the job.
  Only the last can make a job; the service treats any retryable failure as ambiguous all the same.
- Statuses (`pending, queued, running, compressing, uploading, cancel_requested, cancelled, error,
  user_error, completed`, and `failed`) are mapped onto ours; `uploading` here is Together uploading
  the trained model, not our files, so it maps to `running`. The reason of a failure is in the
  events, not on the job: it is read from them.
- Events carry no id: one is derived from the job id and the event's content. Per-step loss comes
  from the metrics endpoint and is handed over as `metrics` events, which the run's loss curve reads.
- The fine-tuned model is `model_output_name`, set on the run only once the job has completed.

The SDK's own retries are off (`max_retries=0`), as on the OpenAI path: `_call` retries what is worth
retrying and job creation is never retried here. Chat goes through the same client: with
TOGETHER_BASE_URL set the SDK sends it to `<base>/v1/chat/completions`, else to Together's inference host.
Together's values in our terms (run tags, statuses, options, timestamps, event ids): `together_format.py`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, TypeVar

from django.conf import settings

from curation.provider_names import ProviderName

from finetune.providers.base import ChatResult, Provider, ProviderError, register
from finetune.providers.chat import chat_completion
from finetune.providers.errors import together_provider_error
from finetune.providers.fine_tuning import (
    RUN_ID_KEY,
    account_fingerprint,
    RemoteCheckpoint,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
)
from gestima.storage import StoredFile
from finetune.providers.together_format import (
    BASE_LEARNING_RATE,
    FAILED_STATUSES,
    FAILURE_WORDS,
    STATUS_MAP,
    epoch_of,
    event_fields,
    event_id_of,
    field_of,
    job_suffix,
    options_clean,
    run_id_of,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TogetherProvider(Provider):
    name = ProviderName.TOGETHER
    calls_api = True
    # Together has no "auto" epoch count: a run asking for "auto" is given its dataset's epochs at creation.
    auto_epochs = False
    trains_models_of = frozenset({ProviderName.TOGETHER})

    def __init__(self):
        self._client = None

    @classmethod
    def is_configured(cls) -> bool:
        return bool(settings.TOGETHER_API_KEY)

    def options_check(self, options: dict) -> dict:
        return options_clean(options)

    def validation_passes(self, *, options: dict, has_validation: bool) -> int:
        """docs.together.ai/docs/fine-tuning/pricing: n_epochs × training tokens + n_evals × validation tokens
        (a validation file is evaluated at least once, see create_job)."""
        return max(1, int((options or {}).get("n_evals") or 0)) if has_validation else 0

    @property
    def client(self):
        if self._client is None:
            import together

            if not settings.TOGETHER_API_KEY:
                raise ProviderError(
                    "TOGETHER_API_KEY is not set: the together provider cannot be used.", code="not_configured"
                )
            self._client = together.Together(
                api_key=settings.TOGETHER_API_KEY,
                base_url=settings.TOGETHER_BASE_URL or None,
                timeout=settings.OPENAI_TIMEOUT_SECONDS,
                max_retries=0,
            )
        return self._client

    # --- plumbing ----------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T], *, retry: bool = True) -> T:
        from finetune.providers.openai import backoff_delay

        attempts = max(1, settings.OPENAI_MAX_ATTEMPTS) if retry else 1
        for attempt in range(attempts):
            try:
                return fn()
            except Exception as exc:  # the SDK raises its own errors and ValueError/FileTypeError before sending
                error = together_provider_error(exc)
                if error.code == "unexpected":
                    raise
            if not error.retryable or attempt == attempts - 1:
                raise error
            delay = backoff_delay(attempt, error.retry_after)
            logger.warning("provider %s: %s (%s); retrying in %.2fs", self.name, error.code, error.message, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    # --- files ---------------------------------------------------------------------------------
    def account(self) -> str:
        """The account uploaded files belong to (see `account_fingerprint`); the key is only hashed."""
        return account_fingerprint(
            provider=self.name,
            base_url=settings.TOGETHER_BASE_URL or "https://api.together.xyz",
            organization="",
            api_key=settings.TOGETHER_API_KEY,
        )

    def file_exists(self, file_id: str) -> bool:
        """docs.together.ai/reference/get_files-id: a deleted file answers 404."""
        try:
            self._call(lambda: self.client.files.retrieve(file_id))
        except ProviderError as exc:
            if getattr(exc, "http_status", None) == 404:
                return False
            raise
        return True

    def upload_file(self, *, path: Path | StoredFile, purpose: str = "fine-tune") -> RemoteFile:
        """The SDK's upload: its own check of the file, then a request for an upload URL (a redirect),
        a PUT of the bytes there and a call that starts Together's validation. A file Together already
        holds (same checksum) comes back as that file: an upload retried after a lost answer costs nothing."""
        source = path if isinstance(path, StoredFile) else StoredFile.at(path)
        # The SDK checks and sends a path only: a file in a bucket is copied to a temp file first.
        with source.local_path() as local:
            uploaded = self._call(lambda: self.client.files.upload(file=local, purpose=purpose, check=True))
        status = str(field_of(uploaded, "processing_status") or "")
        if status in ("FAILED", "INVALID_FORMAT"):
            # The SDK's upload answer drops the validation report: the file itself carries it.
            try:
                report = field_of(self._call(lambda: self.client.files.retrieve(uploaded.id)), "validation_report")
            except ProviderError:
                report = None
            detail = (field_of(report, "error") if report is not None else "") or status
            raise ProviderError(
                f"Together refused {source.filename}: {detail}", code="invalid_file", param="training_file"
            )
        return RemoteFile(id=uploaded.id, bytes=int(field_of(uploaded, "bytes") or source.size()))

    def result_file_content(self, file_id: str) -> bytes:
        raise ProviderError(
            "Together jobs have no result file: metrics come from the metrics endpoint", code="unsupported"
        )

    # --- jobs ----------------------------------------------------------------------------------
    def _job(self, job, *, events: list | None = None) -> RemoteJob:
        raw_status = str(field_of(job, "status") or "")
        status = STATUS_MAP.get(raw_status, raw_status)
        suffix = field_of(job, "suffix") or ""
        output = (
            field_of(job, "x_model_output_name")
            or field_of(job, "output_name")
            or field_of(job, "model_output_name")
            or ""
        )
        run_id = run_id_of(suffix) or run_id_of(output.rsplit("-", 1)[0] if output else "")
        error_code = error_message = ""
        if raw_status in FAILED_STATUSES:
            error_code = raw_status
            error_message = self._failure_message(job, events) or FAILURE_WORDS.get(raw_status, raw_status)
        elif raw_status == "cancelled":
            # Cancelled by Together (not by us) is most often a failed balance check: the events say so.
            billing = [
                e
                for e in self._events_of(job, events)
                if "billing" in e["type"] or "balance" in e["message"].lower() or "insufficient" in e["message"].lower()
            ]
            if billing:
                error_code, error_message = "insufficient_balance", billing[-1]["message"]
        token_count = field_of(job, "token_count")
        return RemoteJob(
            id=job.id if not isinstance(job, dict) else job["id"],
            status=status,
            model=field_of(job, "model") or "",
            fine_tuned_model=output if raw_status == "completed" else "",
            trained_tokens=int(token_count) if token_count and raw_status == "completed" else None,
            error_code=error_code,
            error_message=error_message,
            result_files=[],
            metadata={RUN_ID_KEY: run_id, "together_status": raw_status, "output_name": output}
            if run_id
            else {"together_status": raw_status, "output_name": output},
            created_at=epoch_of(field_of(job, "created_at")),
            finished_at=epoch_of(field_of(job, "updated_at"))
            if status in ("succeeded", "failed", "cancelled")
            else None,
            training_file=field_of(job, "training_file") or "",
            validation_file=field_of(job, "validation_file") or "",
        )

    def _events_of(self, job, events: list | None) -> list[dict]:
        """The job's events: those given, else those the job carries, else (for an ended job) the event list."""
        source = events if events is not None else (field_of(job, "events") or None)
        if source is None:
            try:
                source = self._call(lambda: self.client.fine_tuning.list_events(job.id)).data or []
            except ProviderError:
                source = []
        return [event_fields(e) for e in source if not isinstance(e, str)]

    def _failure_message(self, job, events: list | None) -> str:
        fields = self._events_of(job, events)
        errors = [f["message"] for f in fields if f["level"].endswith("error") or f["type"] in ("job_error",)]
        return errors[-1] if errors else ""

    def create_job(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str = "",
        hyperparameters: dict,
        suffix: str = "",
        seed: int | None = None,
        metadata: dict[str, str],
        options: dict | None = None,
    ) -> RemoteJob:
        """One attempt, never retried here: a failed create may still have made a job (see find_job)."""
        run_id = (metadata or {}).get(RUN_ID_KEY, "")
        opts = options_clean(options)
        epochs = hyperparameters.get("n_epochs")
        if epochs in (None, "auto"):
            raise ProviderError(
                'Together needs a number of epochs (it has no "auto")', code="invalid_request", param="n_epochs"
            )
        kwargs = {
            "model": model,
            "training_file": training_file,
            "n_epochs": int(epochs),
            "suffix": job_suffix(suffix=suffix, run_id=run_id) if run_id else (suffix or None),
            "lora": opts["training_type"] == "lora",
            "n_checkpoints": opts["n_checkpoints"],
            "train_on_inputs": "auto",
            "train_vision": opts["train_vision"],
        }
        batch = hyperparameters.get("batch_size")
        kwargs["batch_size"] = "max" if batch in (None, "auto") else int(batch)
        multiplier = hyperparameters.get("learning_rate_multiplier")
        if multiplier not in (None, "auto"):
            kwargs["learning_rate"] = BASE_LEARNING_RATE * float(multiplier)
        if validation_file:
            kwargs["validation_file"] = validation_file
            kwargs["n_evals"] = opts["n_evals"] or 1
        if seed is not None:
            kwargs["random_seed"] = seed
        return self._job(self._call(lambda: self.client.fine_tuning.create(**kwargs), retry=False), events=[])

    def _list(self) -> list:
        return list(self._call(lambda: self.client.fine_tuning.list()).data or [])

    def find_job(self, *, run_id: int | str) -> RemoteJob | None:
        """The job whose suffix carries our run id (Together lists every job of the account in one answer)."""
        wanted = str(run_id)
        for job in self._list()[: settings.RUN_LOOKUP_MAX_JOBS]:
            if run_id_of(field_of(job, "suffix")) == wanted:
                return self.retrieve_job(job.id)
        return None

    def retrieve_job(self, job_id: str) -> RemoteJob:
        return self._job(self._call(lambda: self.client.fine_tuning.retrieve(job_id)))

    def cancel_job(self, job_id: str) -> RemoteJob:
        return self._job(self._call(lambda: self.client.fine_tuning.cancel(job_id)), events=[])

    def list_jobs(self, *, limit: int | None = None) -> list[RemoteJob]:
        limit = limit or settings.RUN_LOOKUP_MAX_JOBS
        return [self._job(job, events=[]) for job in self._list()[:limit]]

    def list_events(self, job_id: str, *, known_ids: set[str] | frozenset = frozenset()) -> list[RemoteEvent]:
        """New events, oldest first, then one `metrics` event per step of the metrics endpoint (the loss curve)."""
        events = []
        for event in self._call(lambda: self.client.fine_tuning.list_events(job_id)).data or []:
            fields = event_fields(event)
            event_id = event_id_of(job_id, fields)
            if event_id in known_ids:
                continue
            data = {
                k: v
                for k, v in (
                    event.model_dump(exclude_none=True) if hasattr(event, "model_dump") else dict(event)
                ).items()
                if k not in ("object", "message", "level", "type", "created_at")
            }
            events.append(
                RemoteEvent(
                    id=event_id,
                    created_at=epoch_of(fields["created_at"]),
                    level=fields["level"],
                    type=fields["type"],
                    message=fields["message"],
                    data=data,
                )
            )
        events.sort(key=lambda e: e.created_at or 0)
        return events + self._metric_events(job_id, known_ids)

    def _metric_events(self, job_id: str, known_ids) -> list[RemoteEvent]:
        """Together's per-step metrics (`train/loss`, `eval/loss` with their `*/global_step`) as our metric rows."""
        rows = self._call(lambda: self.client.fine_tuning.list_metrics(job_id)).metrics or []
        steps: dict[int, dict] = {}
        for row in rows:
            for prefix, field in (("train", "train_loss"), ("eval", "valid_loss")):
                step, loss = row.get(f"{prefix}/global_step"), row.get(f"{prefix}/loss")
                if step is not None and loss is not None:
                    steps.setdefault(int(step), {"step": int(step)})[field] = float(loss)
        out = []
        for step, data in sorted(steps.items()):
            event_id = f"tgm-{job_id}-{step}-" + (
                "tv" if "valid_loss" in data and "train_loss" in data else "v" if "valid_loss" in data else "t"
            )
            if event_id in known_ids:
                continue
            parts = [f"{k.replace('_', ' ')}={v}" for k, v in data.items() if k != "step"]
            out.append(
                RemoteEvent(
                    id=event_id,
                    created_at=None,
                    level="info",
                    type="metrics",
                    message=f"Step {step}: " + ", ".join(parts),
                    data=data,
                )
            )
        return out

    def list_checkpoints(self, job_id: str) -> list[RemoteCheckpoint]:
        checkpoints = self._call(lambda: self.client.fine_tuning.list_checkpoints(job_id)).data or []
        return [
            RemoteCheckpoint(
                id=f"{job_id}:{c.step}:{c.checkpoint_type}"[:100],
                step=c.step,
                fine_tuned_model_checkpoint=field_of(c, "object_name") or f"{job_id}:{c.step}",
                metrics={"type": c.checkpoint_type, "path": c.path},
                created_at=epoch_of(c.created_at),
            )
            for c in checkpoints
        ]

    # --- inference -----------------------------------------------------------------------------
    def chat_prepare(self) -> None:
        self.client.chat.completions  # noqa: B018 (build the client and load its chat resource in this thread)

    def chat(
        self,
        *,
        model: str,
        messages: list[dict],
        json_output: bool = True,
        temperature: float = 0.0,
        timeout: float = 120.0,
    ) -> ChatResult:
        try:
            return chat_completion(
                self.client,
                model=model,
                messages=messages,
                json_output=json_output,
                temperature=temperature,
                timeout=timeout,
            )
        except ProviderError:
            raise
        except Exception as exc:
            error = together_provider_error(exc)
            if error.code == "unexpected":
                raise
            raise error from exc


register(TogetherProvider)
