"""OpenAI and Azure OpenAI through the `openai` SDK: files, uploads and fine-tuning jobs (chat comes from chat.py).

The SDK's own retries are off for these calls (`max_retries=0`): it would retry quota 429s and, worse,
re-send `jobs.create` after a 5xx that may already have created a job. `_call` retries what is worth
retrying (rate limits honouring retry-after, 5xx, timeouts, connection errors); job creation is never
retried here: the service looks the job up by metadata first (see services/run_start.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, TypeVar

from django.conf import settings

from curation.provider_names import ProviderName

from finetune.providers.base import Provider, ProviderError, register
from gestima.storage import StoredFile
from finetune.providers.chat import OpenAIChatMixin
from finetune.providers.errors import provider_error
from finetune.providers.fine_tuning import (
    RUN_ID_KEY,
    account_fingerprint,
    RemoteCheckpoint,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's retry-after (capped), else exponential."""
    if retry_after is not None:
        return min(retry_after, settings.OPENAI_RETRY_AFTER_MAX_SECONDS)
    return min(settings.OPENAI_BACKOFF_BASE_SECONDS * (2**attempt), settings.OPENAI_BACKOFF_MAX_SECONDS)


def _resolved_hyperparameters(job) -> dict:
    """The hyperparameters the provider settled on: the job's method (supervised, dpo, ...) first, then the
    legacy top-level field. Values still "auto" (not resolved yet) are left out."""
    found = {}
    method = getattr(job, "method", None)
    if method is not None:
        kind = getattr(method, "type", None) or ""
        section = getattr(method, kind, None) if kind else None
        hyper = getattr(section, "hyperparameters", None) if section is not None else None
        if hyper is not None:
            found = hyper.model_dump(exclude_none=True) if hasattr(hyper, "model_dump") else dict(hyper)
    if not found and getattr(job, "hyperparameters", None) is not None:
        hyper = job.hyperparameters
        found = hyper.model_dump(exclude_none=True) if hasattr(hyper, "model_dump") else dict(hyper)
    return {k: v for k, v in found.items() if v != "auto"}


def _job(job) -> RemoteJob:
    error = getattr(job, "error", None)
    # `error` may be {} or all-null on a successful job.
    code = (getattr(error, "code", None) or "") if error else ""
    return RemoteJob(
        id=job.id,
        status=str(job.status),
        model=job.model or "",
        fine_tuned_model=job.fine_tuned_model or "",
        trained_tokens=job.trained_tokens,
        error_code=code,
        error_message=(getattr(error, "message", None) or "") if code else "",
        error_param=(getattr(error, "param", None) or "") if code else "",
        result_files=list(job.result_files or []),
        metadata=dict(job.metadata or {}),
        created_at=job.created_at,
        finished_at=job.finished_at,
        training_file=job.training_file or "",
        validation_file=job.validation_file or "",
        hyperparameters=_resolved_hyperparameters(job),
        estimated_finish=getattr(job, "estimated_finish", None),
    )


class OpenAIProvider(OpenAIChatMixin, Provider):
    name = ProviderName.OPENAI
    calls_api = True
    trains_models_of = frozenset({ProviderName.OPENAI, ProviderName.AZURE})

    def __init__(self):
        self._client = None
        self._ft = None

    # The chat mixin reads `self.client`; the fine-tuning calls use `self.ft` (no SDK retries).
    @property
    def client(self):
        if self._client is None:
            self._client = self._make_client()
        return self._client

    @property
    def ft(self):
        if self._ft is None:
            self._ft = self.client.with_options(max_retries=0, timeout=settings.OPENAI_TIMEOUT_SECONDS)
        return self._ft

    def _make_client(self):
        import openai

        if not settings.OPENAI_API_KEY:
            raise ProviderError("OPENAI_API_KEY is not set: the openai provider cannot be used.", code="not_configured")
        return openai.OpenAI(
            api_key=settings.OPENAI_API_KEY,
            base_url=settings.OPENAI_BASE_URL or None,
            organization=settings.OPENAI_ORGANIZATION or None,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
        )

    def account(self) -> str:
        """The account uploaded files belong to (see `account_fingerprint`); the key is only hashed."""
        return account_fingerprint(
            provider=self.name,
            base_url=settings.OPENAI_BASE_URL or "https://api.openai.com/v1",
            organization=settings.OPENAI_ORGANIZATION,
            api_key=settings.OPENAI_API_KEY,
        )

    # --- plumbing ----------------------------------------------------------------------------
    def _call(self, fn: Callable[[], T], *, retry: bool = True) -> T:
        import openai

        attempts = max(1, settings.OPENAI_MAX_ATTEMPTS) if retry else 1
        for attempt in range(attempts):
            try:
                return fn()
            except openai.OpenAIError as exc:
                error = provider_error(exc)
            if not error.retryable or attempt == attempts - 1:
                raise error
            delay = backoff_delay(attempt, error.retry_after)
            logger.warning("provider %s: %s (%s); retrying in %.2fs", self.name, error.code, error.message, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    # --- files ---------------------------------------------------------------------------------
    def upload_file(self, *, path: Path | StoredFile, purpose: str = "fine-tune") -> RemoteFile:
        """The Files API up to the threshold; above it, the Uploads API in parts of at most the part size.

        `path` is a local path or a StoredFile (a run's file in its storage, maybe a bucket): either way the
        bytes are streamed from where they are, never held whole in memory nor copied to a local disk.
        """
        source = path if isinstance(path, StoredFile) else StoredFile.at(path)
        size = source.size()
        if size <= settings.OPENAI_UPLOAD_PART_THRESHOLD:

            def create():
                with source.open() as handle:
                    return self.ft.files.create(file=(source.filename, handle), purpose=purpose)

            created = self._call(create)
            return RemoteFile(id=created.id, bytes=size)
        upload = self._call(
            lambda: self.ft.uploads.create(
                bytes=size, filename=source.filename, mime_type="application/jsonl", purpose=purpose
            )
        )
        part_ids = []
        with source.open() as handle:
            while chunk := handle.read(settings.OPENAI_UPLOAD_PART_SIZE):
                part = self._call(lambda chunk=chunk: self.ft.uploads.parts.create(upload.id, data=chunk))
                part_ids.append(part.id)
        done = self._call(lambda: self.ft.uploads.complete(upload.id, part_ids=part_ids))
        if not done.file:
            raise ProviderError(
                f"upload {upload.id} completed without a file (status {done.status})", code="upload_incomplete"
            )
        return RemoteFile(id=done.file.id, bytes=size, multipart=True)

    def file_exists(self, file_id: str) -> bool:
        """Whether the provider still holds the file (files.retrieve): deleted or expired files answer 404."""
        try:
            self._call(lambda: self.ft.files.retrieve(file_id))
        except ProviderError as exc:
            if getattr(exc, "http_status", None) == 404:
                return False
            raise
        return True

    def file_status(self, file_id: str) -> tuple[str, str]:
        """(status, details) of an uploaded file: `processed` once the provider has imported it (Azure imports in
        the background: `pending`, `running`; `error` with its status details when the import failed)."""
        found = self._call(lambda: self.ft.files.retrieve(file_id))
        return str(getattr(found, "status", "") or "processed"), str(getattr(found, "status_details", "") or "")

    def result_file_content(self, file_id: str) -> bytes:
        return self._call(lambda: self.ft.files.content(file_id).content)

    # --- jobs ----------------------------------------------------------------------------------
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
    ) -> RemoteJob:
        """One attempt, never retried here: a failed create may still have made a job (see find_job)."""
        kwargs = {
            "model": model,
            "training_file": training_file,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            "metadata": metadata,
        }
        if validation_file:
            kwargs["validation_file"] = validation_file
        if suffix:
            kwargs["suffix"] = suffix[:64]
        if seed is not None:
            kwargs["seed"] = seed
        return _job(self._call(lambda: self.ft.fine_tuning.jobs.create(**kwargs), retry=False))

    def find_job(self, *, run_id: int | str) -> RemoteJob | None:
        """The job carrying our run id in its metadata (the filter is also checked here: not every server applies
        it)."""
        wanted = str(run_id)

        def search():
            scanned = 0
            for job in self.ft.fine_tuning.jobs.list(metadata={RUN_ID_KEY: wanted}, limit=100):
                if (job.metadata or {}).get(RUN_ID_KEY) == wanted:
                    return job
                scanned += 1
                if scanned >= settings.RUN_LOOKUP_MAX_JOBS:
                    return None
            return None

        job = self._call(search)
        return _job(job) if job is not None else None

    def retrieve_job(self, job_id: str) -> RemoteJob:
        return _job(self._call(lambda: self.ft.fine_tuning.jobs.retrieve(job_id)))

    def cancel_job(self, job_id: str) -> RemoteJob:
        return _job(self._call(lambda: self.ft.fine_tuning.jobs.cancel(job_id)))

    def list_jobs(self, *, limit: int | None = None) -> list[RemoteJob]:
        limit = limit or settings.RUN_LOOKUP_MAX_JOBS

        def collect():
            jobs = []
            for job in self.ft.fine_tuning.jobs.list(limit=min(limit, 100)):
                jobs.append(job)
                if len(jobs) >= limit:
                    break
            return jobs

        return [_job(job) for job in self._call(collect)]

    def list_events(self, job_id: str, *, known_ids: set[str] | frozenset = frozenset()) -> list[RemoteEvent]:
        """New events, oldest first. The API lists newest first and pages towards older ones with `after`:
        stop at the first page holding an event we already have."""

        def collect():
            events, after = [], None
            while True:
                kwargs = {"limit": 100}
                if after:
                    kwargs["after"] = after
                page = self.ft.fine_tuning.jobs.list_events(job_id, **kwargs)
                seen_known = False
                for event in page.data:
                    if event.id in known_ids:
                        seen_known = True
                        continue
                    events.append(event)
                if seen_known or not page.data or page.has_more is False:
                    return events
                after = page.data[-1].id

        events = self._call(collect)
        return [
            RemoteEvent(
                id=e.id,
                created_at=e.created_at,
                level=str(e.level or ""),
                type=str(getattr(e, "type", "") or ""),
                message=e.message or "",
                data=dict(getattr(e, "data", None) or {}),
            )
            for e in reversed(events)
        ]

    def list_checkpoints(self, job_id: str) -> list[RemoteCheckpoint]:
        def collect():
            return list(self.ft.fine_tuning.jobs.checkpoints.list(job_id, limit=100))

        return [
            RemoteCheckpoint(
                id=c.id,
                step=c.step_number,
                fine_tuned_model_checkpoint=c.fine_tuned_model_checkpoint or "",
                metrics=c.metrics.model_dump(exclude_none=True) if c.metrics else {},
                created_at=c.created_at,
            )
            for c in self._call(collect)
        ]


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI: the same files and fine_tuning endpoints through the SDK's AzureOpenAI client.

    Differences that matter: uploaded files are imported in the background (see `file_status`), and a
    fine-tuned model answers only through a deployment, named in the chat call's `model` (the SDK routes it to
    /openai/deployments/{name}/chat/completions). Deployments are made through Azure's management API (ARM),
    plain HTTPS with a bearer token, when the management settings are given.
    """

    name = ProviderName.AZURE
    needs_deployment = True
    imports_files_in_background = True

    def _make_client(self):
        import openai

        if not (settings.AZURE_OPENAI_API_KEY and settings.AZURE_OPENAI_ENDPOINT):
            raise ProviderError(
                "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY must be set for the azure provider.",
                code="not_configured",
            )
        return openai.AzureOpenAI(
            azure_endpoint=settings.AZURE_OPENAI_ENDPOINT,
            api_key=settings.AZURE_OPENAI_API_KEY,
            api_version=settings.AZURE_OPENAI_API_VERSION,
            timeout=settings.OPENAI_TIMEOUT_SECONDS,
        )

    def account(self) -> str:
        return account_fingerprint(
            provider=self.name,
            base_url=settings.AZURE_OPENAI_ENDPOINT,
            organization="",
            api_key=settings.AZURE_OPENAI_API_KEY,
        )

    # --- deployments (Azure's management API) ---------------------------------------------------
    @staticmethod
    def management_missing() -> list[str]:
        """The management settings not given ([]: deployments can be created from here)."""
        return [
            name
            for name in (
                "AZURE_SUBSCRIPTION_ID",
                "AZURE_RESOURCE_GROUP",
                "AZURE_OPENAI_ACCOUNT",
                "AZURE_MANAGEMENT_TOKEN",
            )
            if not getattr(settings, name, "")
        ]

    def _deployment_url(self, name: str) -> str:
        base = (settings.AZURE_MANAGEMENT_URL or "https://management.azure.com").rstrip("/")
        return (
            f"{base}/subscriptions/{settings.AZURE_SUBSCRIPTION_ID}/resourceGroups/{settings.AZURE_RESOURCE_GROUP}"
            f"/providers/Microsoft.CognitiveServices/accounts/{settings.AZURE_OPENAI_ACCOUNT}/deployments/{name}"
        )

    def _management(self, method: str, name: str, body: dict | None = None) -> dict:
        import httpx

        missing = self.management_missing()
        if missing:
            raise ProviderError(
                f"Azure management is not configured ({', '.join(missing)} not set): create the "
                "deployment in the portal and record its name on the run.",
                code="not_configured",
            )
        try:
            response = httpx.request(
                method,
                self._deployment_url(name),
                json=body,
                params={"api-version": settings.AZURE_MANAGEMENT_API_VERSION},
                headers={"Authorization": f"Bearer {settings.AZURE_MANAGEMENT_TOKEN}"},
                timeout=settings.OPENAI_TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            raise ProviderError(f"Azure management API unreachable: {exc}", code="connection_error", retryable=True)
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code >= 400:
            error = payload.get("error") or {}
            error = ProviderError(
                f"Azure management API answered {response.status_code}: {error.get('message') or response.text[:300]}",
                code=error.get("code") or f"http_{response.status_code}",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
            error.http_status = response.status_code
            raise error
        return payload

    def create_deployment(self, *, name: str, model: str, capacity: int = 1) -> str:
        """PUT the deployment of a fine-tuned model (standard SKU); returns its provisioningState (`Creating`)."""
        body = {
            "sku": {"name": "standard", "capacity": capacity},
            "properties": {"model": {"format": "OpenAI", "name": model, "version": "1"}},
        }
        payload = self._management("PUT", name, body)
        return str((payload.get("properties") or {}).get("provisioningState") or "Creating")

    def deployment_state(self, name: str) -> str:
        """The deployment's provisioningState: Creating, Succeeded, Failed, ..."""
        payload = self._management("GET", name)
        return str((payload.get("properties") or {}).get("provisioningState") or "")


register(OpenAIProvider)
register(AzureOpenAIProvider)
