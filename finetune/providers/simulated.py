"""The simulated provider: the whole loop without an API key, for the demo. Clearly not a real model.

It trains instantly (a created job has already succeeded, with a seeded loss curve, events and checkpoints) and
its models answer from the ground truth with seeded noise (simulated_answers.py). It is on only with the setting
SIMULATED_PROVIDER, and the services refuse a simulated model for any task not marked demo (promotion, estimates).

Nothing lives in memory: the web process and the workers share its state through small records under
`RUNS_ROOT/simulated/` (one per uploaded file and per job), and everything else (job status, model name, curve,
events, checkpoints) is derived from the job id, which carries the run id and the base model. The truth comes from
an injected index (settings.SIMULATED_TRUTH_INDEX, a callable returning {page image sha256: DrawingTruth}), so
this module never touches the ORM.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.utils.module_loading import import_string

from curation.openai_format import decode_data_url, iter_image_parts
from curation.provider_names import ProviderName

from finetune.providers.base import ChatResult, Provider, ProviderError, register
from finetune.providers.fine_tuning import (
    RUN_ID_KEY,
    RemoteCheckpoint,
    RemoteEvent,
    RemoteFile,
    RemoteJob,
    account_fingerprint,
)
from gestima.storage import StoredFile
from finetune.providers.simulated_answers import (
    DrawingTruth,
    answer,
    fine_tuned_name,
    result_csv,
    seeded,
    training_curve,
)

JOB_PREFIX = "ftjob-sim-"
FILE_PREFIX = "file-sim-"
_JOB_ID = re.compile(rf"^{JOB_PREFIX}(\d+)-([A-Za-z0-9_-]+)$")
# What the job resolves "auto" to (OpenAI's usual choices for a small dataset).
AUTO_HYPERPARAMETERS = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}
# Rough token counts for trained tokens: OpenAI's tile scheme gives a high-detail A3 page about this much.
TOKENS_PER_IMAGE = 765
CHARS_PER_TOKEN = 4


def simulated_enabled() -> bool:
    return bool(getattr(settings, "SIMULATED_PROVIDER", False))


def job_id_for(*, run_id: str, model: str) -> str:
    encoded = base64.urlsafe_b64encode(model.encode()).decode().rstrip("=")
    return f"{JOB_PREFIX}{run_id or 0}-{encoded}"


def job_id_parts(job_id: str) -> tuple[str, str]:
    """(run id, base model) carried by a simulated job id; ProviderError 404 for anything else."""
    match = _JOB_ID.match(job_id or "")
    if not match:
        raise _not_found(f"no simulated fine-tuning job {job_id!r}")
    encoded = match.group(2)
    model = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    return match.group(1), model


def _not_found(message: str) -> ProviderError:
    error = ProviderError(message, code="not_found")
    error.http_status = 404
    return error


@register
class SimulatedProvider(Provider):
    name = ProviderName.SIMULATED
    calls_api = True  # it goes through upload, create, sync like a real provider: the demo shows the real path
    trains_models_of = None  # any base model: the demo trains the shop's usual one
    is_simulated = True

    def __init__(self, *, truth_index: Callable[[], dict[str, DrawingTruth]] | None = None):
        self._truth_index = truth_index
        self._index: dict[str, DrawingTruth] | None = None

    @classmethod
    def is_configured(cls) -> bool:
        return simulated_enabled()

    def _require(self) -> None:
        if not simulated_enabled():
            raise ProviderError(
                "The simulated provider is off: set GESTIMA_SIMULATED_PROVIDER=true (the demo; "
                "`./dev run` does when no provider key is configured).",
                code="not_configured",
            )

    def options_check(self, options: dict) -> dict:
        self._require()
        return super().options_check(options)

    # --- state on disk ---------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(settings.RUNS_ROOT) / "simulated"

    def _record(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{name}.json"

    def _write(self, kind: str, name: str, data: dict) -> None:
        path = self._record(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(path)  # atomic: a reader in another process never sees half a record

    def _read(self, kind: str, name: str) -> dict | None:
        path = self._record(kind, name)
        return json.loads(path.read_text()) if path.exists() else None

    def account(self) -> str:
        return account_fingerprint(provider=self.name, base_url=str(self.root), organization="", api_key="")

    # --- files -----------------------------------------------------------------------------------
    def upload_file(self, *, path: Path | StoredFile, purpose: str = "fine-tune") -> RemoteFile:
        """Keeps what a job needs of the file (lines, images, text), not its bytes; same bytes, same file id."""
        self._require()
        source = path if isinstance(path, StoredFile) else StoredFile.at(path)
        digest, lines, images, chars = hashlib.sha256(), 0, 0, 0
        with source.local_path() as local, local.open("rb") as handle:
            for line in handle:
                digest.update(line)
                lines += 1
                images += line.count(b'"image_url"')
                # Text only: the base64 of the images would count as millions of "characters".
                chars += len(re.sub(rb"data:[^\"]+", b"", line))
        size = source.size()
        file_id = FILE_PREFIX + digest.hexdigest()[:24]
        self._write(
            "files",
            file_id,
            {
                "id": file_id,
                "bytes": size,
                "lines": lines,
                "images": images,
                "chars": chars,
                "filename": source.filename,
                "purpose": purpose,
            },
        )
        return RemoteFile(id=file_id, bytes=size)

    def file_exists(self, file_id: str) -> bool:
        return self._read("files", file_id) is not None

    def file_status(self, file_id: str) -> tuple[str, str]:
        return ("processed", "") if self.file_exists(file_id) else ("deleted", "no such simulated file")

    # --- jobs ------------------------------------------------------------------------------------
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
        """Trains instantly: the job is created succeeded. A second create for the same run finds the first."""
        self._require()
        train = self._read("files", training_file)
        if train is None:
            raise ProviderError(
                f"invalid training_file: {training_file} does not exist", code="invalid_request", param="training_file"
            )
        if validation_file and self._read("files", validation_file) is None:
            raise ProviderError(
                f"invalid validation_file: {validation_file} does not exist",
                code="invalid_request",
                param="validation_file",
            )
        run_id = str((metadata or {}).get(RUN_ID_KEY, "0"))
        job_id = job_id_for(run_id=run_id, model=model)
        existing = self._read("jobs", job_id)
        if existing is not None:
            return self._job(existing)
        resolved = {
            key: (AUTO_HYPERPARAMETERS[key] if value in (None, "auto") else value)
            for key, value in {**AUTO_HYPERPARAMETERS, **(hyperparameters or {})}.items()
        }
        epochs = int(float(resolved["n_epochs"]))
        tokens_per_epoch = train["images"] * TOKENS_PER_IMAGE + train["chars"] // CHARS_PER_TOKEN
        now = int(time.time())
        record = {
            "id": job_id,
            "model": model,
            "training_file": training_file,
            "validation_file": validation_file,
            "hyperparameters": resolved,
            "suffix": suffix,
            "seed": seed,
            "metadata": dict(metadata or {}),
            "created_at": now,
            "finished_at": now + 1,
            "steps": max(1, train["lines"] * epochs),
            "epochs": epochs,
            "trained_tokens": tokens_per_epoch * epochs,
        }
        self._write("jobs", job_id, record)
        return self._job(record)

    def _job(self, record: dict) -> RemoteJob:
        run_id, model = job_id_parts(record["id"])
        return RemoteJob(
            id=record["id"],
            status="succeeded",
            model=model,
            fine_tuned_model=fine_tuned_name(base=model, suffix=record.get("suffix", ""), run_id=run_id),
            trained_tokens=record["trained_tokens"],
            result_files=[f"{FILE_PREFIX}result-{record['id']}"],
            metadata=record.get("metadata") or {},
            created_at=record["created_at"],
            finished_at=record["finished_at"],
            training_file=record["training_file"],
            validation_file=record.get("validation_file", ""),
            hyperparameters=record["hyperparameters"],
        )

    def _job_record(self, job_id: str) -> dict:
        job_id_parts(job_id)  # 404 for an id that is not ours
        record = self._read("jobs", job_id)
        if record is None:
            raise _not_found(f"no simulated fine-tuning job {job_id!r}")
        return record

    def find_job(self, *, run_id: int | str) -> RemoteJob | None:
        self._require()
        for job in self.list_jobs():
            if job.run_id == str(run_id):
                return job
        return None

    def retrieve_job(self, job_id: str) -> RemoteJob:
        self._require()
        return self._job(self._job_record(job_id))

    def cancel_job(self, job_id: str) -> RemoteJob:
        """A simulated job has always finished: cancelling changes nothing (as OpenAI, for a finished job)."""
        return self.retrieve_job(job_id)

    def list_jobs(self, *, limit: int | None = None) -> list[RemoteJob]:
        folder = self.root / "jobs"
        if not folder.is_dir():
            return []
        records = [json.loads(path.read_text()) for path in folder.glob(f"{JOB_PREFIX}*.json")]
        records.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [self._job(r) for r in records[: limit or settings.RUN_LOOKUP_MAX_JOBS]]

    def _curve(self, record: dict) -> list[dict]:
        return training_curve(job_id=record["id"], steps=record["steps"], epochs=record["epochs"])

    def list_events(self, job_id: str, *, known_ids: set[str] | frozenset = frozenset()) -> list[RemoteEvent]:
        self._require()
        record = self._job_record(job_id)
        job = self._job(record)
        start, rows = record["created_at"], self._curve(record)
        events = [
            ("info", "message", "Validating training file (simulated)", {}),
            ("info", "message", "Files validated, moving job to queued state", {}),
            ("info", "message", "Fine-tuning job started (simulated: no model was trained)", {}),
        ]
        for row in rows:
            parts = ", ".join(f"{k.replace('_', ' ')}={v}" for k, v in row.items() if k != "step")
            events.append(("info", "metrics", f"Step {row['step']}/{record['steps']}: {parts}", row))
        events += [
            ("info", "message", f"New fine-tuned model created: {job.fine_tuned_model}", {}),
            ("info", "message", "The job has successfully completed (simulated)", {}),
        ]
        out = []
        for index, (level, kind, message, data) in enumerate(events):
            event_id = f"ftevent-sim-{job_id[len(JOB_PREFIX) :]}-{index}"[:100]
            if event_id not in known_ids:
                out.append(
                    RemoteEvent(id=event_id, created_at=start, level=level, type=kind, message=message, data=dict(data))
                )
        return out

    def list_checkpoints(self, job_id: str) -> list[RemoteCheckpoint]:
        """One checkpoint per epoch (OpenAI keeps the last three), with the metrics at its step."""
        self._require()
        record = self._job_record(job_id)
        job, rows = self._job(record), self._curve(record)
        per_epoch = max(1, record["steps"] // record["epochs"])
        checkpoints = []
        for epoch in range(max(1, record["epochs"] - 2), record["epochs"] + 1):
            step = min(record["steps"], epoch * per_epoch)
            row = rows[step - 1]
            valid = next((r for r in reversed(rows[:step]) if "valid_loss" in r), {})
            metrics = {
                "step": step,
                "train_loss": row["train_loss"],
                "train_mean_token_accuracy": row["train_accuracy"],
                "valid_loss": valid.get("valid_loss"),
                "valid_mean_token_accuracy": valid.get("valid_mean_token_accuracy"),
            }
            name = job.fine_tuned_model if epoch == record["epochs"] else f"{job.fine_tuned_model}:ckpt-step-{step}"
            checkpoints.append(
                RemoteCheckpoint(
                    id=f"ftckpt-sim-{job_id[len(JOB_PREFIX) :]}-{step}"[:100],
                    step=step,
                    fine_tuned_model_checkpoint=name,
                    metrics={k: v for k, v in metrics.items() if v is not None},
                    created_at=record["finished_at"],
                )
            )
        return checkpoints

    def result_file_content(self, file_id: str) -> bytes:
        self._require()
        prefix = f"{FILE_PREFIX}result-"
        if not file_id.startswith(prefix):
            raise _not_found(f"no simulated result file {file_id!r}")
        return result_csv(self._curve(self._job_record(file_id[len(prefix) :])))

    # --- inference -------------------------------------------------------------------------------
    def chat_prepare(self) -> None:
        """Load the truth index here, in the calling thread: evaluation threads then read no database."""
        self._require()
        self._truths()

    def _truths(self) -> dict[str, DrawingTruth]:
        if self._index is None:
            lookup = self._truth_index or import_string(settings.SIMULATED_TRUTH_INDEX)
            self._index = lookup()
        return self._index

    def chat(
        self,
        *,
        model: str,
        messages: list[dict],
        json_output: bool = True,
        temperature: float = 0.0,
        timeout: float = 120.0,
    ) -> ChatResult:
        """The truth of the drawing the messages show (found by its page images' content hash) with the noise of
        the model's kind, seeded by model and drawing: the same question always gets the same answer."""
        self._require()
        started = time.perf_counter()
        truths, truth, images = self._truths(), None, 0
        for _, part in iter_image_parts(messages):
            images += 1
            url = (part.get("image_url") or {}).get("url") or ""
            if truth is None and url.startswith("data:"):
                truth = truths.get(hashlib.sha256(decode_data_url(url)).hexdigest())
        text_chars = sum(
            len(m["content"])
            if isinstance(m.get("content"), str)
            else sum(len(p.get("text") or "") for p in m.get("content") or [] if isinstance(p, dict))
            for m in messages
        )
        fallback_key = hashlib.sha256(json.dumps(messages[-1:], default=str)[:20000].encode()).hexdigest()
        text = answer(model=model, truth=truth, json_output=json_output, fallback_key=fallback_key)
        rng = seeded("latency", model, truth.key if truth else fallback_key)
        return ChatResult(
            text=text,
            input_tokens=images * TOKENS_PER_IMAGE + text_chars // CHARS_PER_TOKEN,
            output_tokens=max(1, len(text) // CHARS_PER_TOKEN),
            latency_ms=int((time.perf_counter() - started) * 1000) + rng.randint(400, 1800),
            raw={
                "id": f"chatcmpl-sim-{rng.randint(10**8, 10**9)}",
                "model": model,
                "finish_reason": "stop",
                "simulated": True,
            },
        )
