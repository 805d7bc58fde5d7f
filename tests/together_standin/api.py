"""Stand-in routes for Together's files, fine-tuning jobs and chat, with the failures the real API produces.

Each behaviour names where it comes from: Together's documentation (docs.together.ai, as stored in
November 2026) or, where the documentation says nothing of the wire, the `together` SDK 3.1.1 itself
(`together/lib/resources/files.py`, the `types/` generated from Together's OpenAPI spec).

`TogetherAPI().install(api)` registers the routes; its attributes script the behaviour:
- a job moves pending → queued → running → uploading → completed, one step per retrieve, with events
  and per-step metrics while running, checkpoints and `model_output_name` at the end;
- `fail_jobs_with = (status, message)`: the next jobs end `user_error` / `error` with that message in
  an error event instead of completing; `cancel_for_balance = True`: they are cancelled by the balance check;
- `inline_events = False`: jobs come without their `events` (they are optional in the reference);
- `create_lands_then_500 = n` / `create_lands_then_timeout = n`: the next n creates make the job and
  still answer 500, or answer too late for the client (a lost answer);
- HTTP 429/5xx/402 before any handler: `api.script(...)` from the OpenAI stand-in's base.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import threading
import time

from tests.openai_standin.base import Request, Response, StandIn

# docs.together.ai/docs/fine-tuning/monitoring: "pending → queued → running → uploading → completed".
PROGRESSION = ["pending", "queued", "running", "uploading", "completed"]
TERMINAL = {"completed", "error", "user_error", "cancelled", "failed"}


def _iso(ts: float | None = None) -> str:
    return (
        datetime.datetime.fromtimestamp(ts or time.time(), tz=datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    )


def together_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    headers: dict | None = None,
) -> Response:
    """An error answer. Status codes and meanings: support.together.ai "Error codes, explanations and
    solutions" (400, 401, 402 payment required, 403, 404, 429, 500, 503). The body's shape is the
    OpenAI-compatible `{"error": {...}}` (docs.together.ai/docs/openai-api-compatibility)."""
    return Response(status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, headers or {})


def rate_limited(retry_after: str = "0") -> Response:
    return together_error(
        429, "Rate limit exceeded: too many requests", type_="rate_limit", headers={"retry-after": retry_after}
    )


def payment_required() -> Response:
    return together_error(
        402,
        "Payment required: your account has reached its spending limit or run out of credits. Add funds to continue.",
        type_="payment_required",
    )


def credit_429() -> Response:
    return together_error(
        429, "You have run out of credits: add a credit card or raise your spending limit.", type_="credit_limit"
    )


def server_error(status: int = 503) -> Response:
    return together_error(status, "The engine is currently overloaded, please try again later", type_="server_error")


class TogetherStandIn(StandIn):
    """The OpenAI stand-in's server; Together's base URL is the host itself (the SDK's paths carry /v1)."""

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.root


class TogetherAPI:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.api: TogetherStandIn | None = None
        self.files: dict[str, dict] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.by_checksum: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.metrics: dict[str, list[dict]] = {}
        self.checkpoints: dict[str, list[dict]] = {}
        self.fail_jobs_with: tuple[str, str] | None = None
        self.cancel_for_balance = False
        self.create_lands_then_500 = 0
        self.create_lands_then_timeout = 0
        self.timeout_delay = 3.0
        self.steps = 6
        self.chat_answer = '{"ok": true}'
        self.inline_events = True  # False: jobs come without their events (read from the events endpoint)

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):04d}"

    # --- files ---------------------------------------------------------------------------------
    def _file_obj(self, file_id: str) -> dict:
        return self.files[file_id]

    def files_create(self, request: Request):
        """SDK `UploadManager.get_upload_url`: a form with purpose, file_name, file_type and checksum; the
        answer is a 302 whose Location is a presigned URL and whose X-Together-File-Id names the file. A
        file with a known checksum answers 409 with its `file_id` (the SDK then retrieves that file)."""
        form = request.form()
        checksum = form.get("checksum", "")
        with self.lock:
            if (
                checksum
                and checksum in self.by_checksum
                and self.files[self.by_checksum[checksum]]["processing_status"] == "COMPLETED"
            ):
                return Response(409, {"file_id": self.by_checksum[checksum], "message": "File already exists"})
            file_id = self._id("file")
            self.files[file_id] = {
                "id": file_id,
                "object": "file",
                "bytes": 0,
                "created_at": int(time.time()),
                "filename": form.get("file_name", ""),
                "FileType": form.get("file_type", "jsonl"),
                "purpose": form.get("purpose", "fine-tune"),
                "processing_status": "PENDING",
                "checksum": checksum,
            }
        return Response(302, b"", {"Location": f"{self.api.root}/_presigned/{file_id}", "X-Together-File-Id": file_id})

    def presigned_put(self, request: Request):
        """The presigned PUT of the bytes (object storage): 200 and nothing more."""
        file_id = request.params["file_id"]
        with self.lock:
            self.file_bytes[file_id] = request.body
            self.files[file_id]["bytes"] = len(request.body)
        return Response(200, b"")

    def files_preprocess(self, request: Request):
        """SDK `UploadManager.callback`: starts Together's validation and answers the FileResponse
        (`types/file_response.py`: processing_status, validation_report). Here validation is immediate:
        every line must be a JSON object with a `messages` list (docs.together.ai/docs/fine-tuning/vision)."""
        file_id = request.params["file_id"]
        with self.lock:
            obj = self.files.get(file_id)
            if obj is None:
                return together_error(404, f"File {file_id} not found")
            error = None
            for number, line in enumerate(self.file_bytes.get(file_id, b"").splitlines(), 1):
                try:
                    row = json.loads(line)
                except ValueError:
                    error = f"Line {number}: not valid JSON"
                    break
                if not isinstance(row.get("messages"), list):
                    error = f"Line {number}: no messages list"
                    break
            if error:
                obj.update(
                    processing_status="INVALID_FORMAT",
                    validation_report={
                        "valid": False,
                        "error": error,
                        "error_type": "INVALID_FORMAT",
                        "file_id": file_id,
                    },
                )
            else:
                obj.update(
                    processing_status="COMPLETED",
                    validation_report={
                        "valid": True,
                        "file_id": file_id,
                        "dataset_format": "CONVERSATION",
                        "dataset_is_multimodal": True,
                    },
                )
                if obj["checksum"]:
                    self.by_checksum[obj["checksum"]] = file_id
            return {k: v for k, v in obj.items() if k != "checksum"}

    def files_retrieve(self, request: Request):
        obj = self.files.get(request.params["file_id"])
        return {k: v for k, v in obj.items() if k != "checksum"} if obj else together_error(404, "File not found")

    # --- jobs ----------------------------------------------------------------------------------
    def model_limits(self, request: Request):
        """GET /fine-tunes/models/limits (`types/finetune_model_limits.py`); the SDK reads it before a create."""
        name = request.q("model_name", "")
        return {
            "model_name": name,
            "default_gradient_accumulation_steps": 1,
            "lora_training": {
                "default_rank": 64,
                "max_batch_size": 32,
                "max_batch_size_dpo": 16,
                "max_rank": 64,
                "min_batch_size": 8,
                "target_modules": ["all-linear"],
            },
            "full_training": {"max_batch_size": 16, "max_batch_size_dpo": 8, "min_batch_size": 8},
            "max_learning_rate": 1.0,
            "max_num_checkpoints": 20,
            "max_num_epochs": 20,
            "max_num_evals": 100,
            "max_seq_length_dpo": 8192,
            "max_seq_length_sft": 32768,
            "merge_output_lora": True,
            "min_learning_rate": 1e-8,
            "min_max_seq_length": 512,
            "supports_full_training": True,
            "supports_reasoning": False,
            "supports_tools": False,
            "supports_vision": True,
        }

    def estimate_price(self, request: Request):
        """docs.together.ai/reference/post-fine-tunes-estimate-price: no estimate for a multimodal dataset
        (`unavailable_reason: multimodal_dataset`, types/fine_tuning_estimate_price_response.py)."""
        return {"estimation_available": False, "unavailable_reason": "multimodal_dataset"}

    def _event(self, job_id: str, message: str, type_: str, *, level: str = "info", **extra) -> None:
        self.events.setdefault(job_id, []).append(
            {
                "object": "fine-tune-event",
                "created_at": _iso(),
                "message": message,
                "type": type_,
                "level": level,
                **extra,
            }
        )

    def _public(self, job: dict) -> dict:
        # docs.together.ai/reference/get-fine-tunes-id: the job may carry its events (`events` is optional).
        return {**job, "events": list(self.events.get(job["id"], [])) if self.inline_events else None}

    def jobs_create(self, request: Request):
        """docs.together.ai/reference/post-fine-tunes: the job, with `model_output_name` known at once."""
        body = request.json()
        if body.get("training_file") not in self.files:
            return together_error(400, f"Training file {body.get('training_file')} was not found")
        with self.lock:
            job_id = f"ft-{hashlib.sha1(str(next(self.ids)).encode()).hexdigest()[:8]}-standin"
            suffix = body.get("suffix") or ""
            model = body["model"]
            output = f"standin-user/{model.split('/')[-1]}{'-' + suffix if suffix else ''}-{job_id[3:11]}"
            now = _iso()
            self.jobs[job_id] = {
                "id": job_id,
                "status": "pending",
                "created_at": now,
                "updated_at": now,
                "user_id": "user-standin",
                "model": model,
                "model_output_name": output,
                "suffix": suffix,
                "n_epochs": body.get("n_epochs"),
                "n_checkpoints": body.get("n_checkpoints"),
                "n_evals": body.get("n_evals"),
                "batch_size": body.get("batch_size"),
                "learning_rate": body.get("learning_rate"),
                "training_file": body["training_file"],
                "validation_file": body.get("validation_file") or "",
                "training_type": body.get("training_type"),
                "training_method": body.get("training_method"),
                "multimodal_params": body.get("multimodal_params"),
                "random_seed": body.get("random_seed"),
                "token_count": None,
                "total_price": None,
                "owner_address": "standin@example.com",
            }
            self._event(job_id, "Fine tune request created", "job_pending")
            job = self._public(self.jobs[job_id])
            lands_then_500 = self.create_lands_then_500 > 0
            if lands_then_500:
                self.create_lands_then_500 -= 1
            lands_then_timeout = self.create_lands_then_timeout > 0
            if lands_then_timeout:
                self.create_lands_then_timeout -= 1
        if lands_then_500:
            return server_error(500)
        if lands_then_timeout:
            return Response(200, job, delay=self.timeout_delay)
        return Response(200, job)

    def _advance(self, job: dict) -> None:
        status = job["status"]
        if status in TERMINAL or status == "cancel_requested":
            if status == "cancel_requested":
                job["status"] = "cancelled"
                self._event(job["id"], "Job cancelled", "job_stopped")
            return
        job_id = job["id"]
        job["updated_at"] = _iso()
        if status == "pending" and self.cancel_for_balance:
            # docs.together.ai/docs/fine-tuning/troubleshooting: "Cancelled: usually an automatic
            # cancellation, most often from a failed balance check."
            job["status"] = "cancelled"
            self._event(
                job_id,
                "Insufficient balance: the job was cancelled. Add funds or raise your spending limit.",
                "billing_limit",
                level="error",
            )
            return
        if status == "pending" and self.fail_jobs_with:
            # troubleshooting: "User error: a problem with your inputs"; the event log names the cause.
            failed_status, message = self.fail_jobs_with
            job["status"] = failed_status
            self._event(job_id, message, "job_error", level="error")
            return
        job["status"] = PROGRESSION[PROGRESSION.index(status) + 1]
        if job["status"] == "running":
            self._event(job_id, "Training started", "training_start")
            job["token_count"] = 120_000
            for step in range(1, self.steps + 1):
                self.metrics.setdefault(job_id, []).append(
                    {
                        "timestamp": time.time_ns(),
                        "train/global_step": step,
                        "train/loss": round(2.0 / step, 4),
                        "train/learning_rate": 1e-5,
                    }
                )
                if step % 2 == 0:
                    self.metrics[job_id].append(
                        {"timestamp": time.time_ns(), "eval/global_step": step, "eval/loss": round(2.2 / step, 4)}
                    )
            self._event(job_id, "Epoch completed", "epoch_complete", step=self.steps, total_steps=self.steps)
        elif job["status"] == "uploading":
            self._event(job_id, "Uploading the model", "model_uploading")
        elif job["status"] == "completed":
            job["total_price"] = 96
            self.checkpoints[job_id] = [
                {
                    "checkpoint_type": f"Intermediate (step {self.steps // 2})",
                    "created_at": _iso(),
                    "path": f"s3://standin/{job_id}/step-{self.steps // 2}",
                    "step": self.steps // 2,
                    "checkpoint": "adapter",
                },
                {
                    "checkpoint_type": "Final",
                    "created_at": _iso(),
                    "path": f"s3://standin/{job_id}/final",
                    "step": self.steps,
                    "checkpoint": "adapter",
                    "object_name": job["model_output_name"],
                },
            ]
            self._event(job_id, "Job completed", "job_complete")

    def jobs_retrieve(self, request: Request):
        with self.lock:
            job = self.jobs.get(request.params["job_id"])
            if job is None:
                return together_error(404, f"Fine-tune job {request.params['job_id']} not found")
            self._advance(job)
            return self._public(job)

    def jobs_list(self, request: Request):
        """GET /fine-tunes: every job of the account in one answer, no paging (types/fine_tuning_list_response.py)."""
        with self.lock:
            return {"data": [dict(j) for j in sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)]}

    def jobs_cancel(self, request: Request):
        """docs.together.ai/reference/post-fine-tunes-id-cancel: a running job goes to cancel_requested."""
        with self.lock:
            job = self.jobs.get(request.params["job_id"])
            if job is None:
                return together_error(404, "Fine-tune job not found")
            if job["status"] in TERMINAL:
                return together_error(400, f"Job is already {job['status']}")
            job["status"] = "cancel_requested"
            self._event(job["id"], "Cancel requested", "cancel_requested")
            return self._public(job)

    def jobs_events(self, request: Request):
        return {"data": list(self.events.get(request.params["job_id"], []))}

    def jobs_metrics(self, request: Request):
        """docs.together.ai/reference/get-fine-tunes-id-metrics and docs/fine-tuning-training-metrics:
        `train/*` and `eval/*` objects in chronological order."""
        return {"metrics": list(self.metrics.get(request.params["job_id"], []))}

    def jobs_checkpoints(self, request: Request):
        return {"data": list(self.checkpoints.get(request.params["job_id"], []))}

    # --- chat ----------------------------------------------------------------------------------
    def chat(self, request: Request):
        """docs.together.ai/docs/openai-api-compatibility: POST /v1/chat/completions, OpenAI's shape."""
        body = request.json()
        answer = self.chat_answer(body) if callable(self.chat_answer) else self.chat_answer
        if isinstance(answer, Response):
            return answer
        return {
            "id": self._id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 15, "total_tokens": 135},
        }

    # --- wiring --------------------------------------------------------------------------------
    def install(self, api: TogetherStandIn) -> "TogetherAPI":
        self.api = api
        api.route("POST", "/files")(self.files_create)
        api.route("PUT", "/_presigned/(?P<file_id>[^/]+)")(self.presigned_put)
        api.route("POST", "/files/(?P<file_id>[^/]+)/preprocess")(self.files_preprocess)
        api.route("GET", "/files/(?P<file_id>[^/]+)")(self.files_retrieve)
        api.route("GET", "/fine-tunes/models/limits")(self.model_limits)
        api.route("POST", "/fine-tunes/estimate-price")(self.estimate_price)
        api.route("POST", "/fine-tunes")(self.jobs_create)
        api.route("GET", "/fine-tunes")(self.jobs_list)
        api.route("GET", "/fine-tunes/(?P<job_id>[^/]+)")(self.jobs_retrieve)
        api.route("POST", "/fine-tunes/(?P<job_id>[^/]+)/cancel")(self.jobs_cancel)
        api.route("GET", "/fine-tunes/(?P<job_id>[^/]+)/events")(self.jobs_events)
        api.route("GET", "/fine-tunes/(?P<job_id>[^/]+)/metrics")(self.jobs_metrics)
        api.route("GET", "/fine-tunes/(?P<job_id>[^/]+)/checkpoints")(self.jobs_checkpoints)
        api.route("POST", "/chat/completions")(self.chat)
        api.together = self
        return self
