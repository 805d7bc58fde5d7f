"""Stand-in routes for files, uploads and fine-tuning jobs, with the failures the real API produces.

`FineTuningAPI.install(api)` registers the routes; its attributes script the behaviour:
- a job moves validating_files → queued → running → succeeded, one step per retrieve, emitting metrics
  events while running and a base64 CSV result file at the end;
- `fail_jobs_with = (code, message)`: the next jobs fail instead of succeeding (quota, invalid file);
- `create_lands_then_500 = n`: the next n creates make the job and still answer 500 (ambiguous failure);
- `apply_metadata_filter = False`: the jobs list ignores `metadata[k]=v` (as some servers do);
- `stale_reads = n`: the next n job retrieves answer the job as it was when created (a lagging replica);
- `refuse_lines = {"train": {3: "image failed content moderation"}}`: when the job starts running it
  reports those lines as skipped, one warning event each (`refusal_style = "per_line"`) or one summary
  warning naming all lines (`"summary"`), and trains on the rest;
- "auto" hyperparameters resolve to `resolved` when the job leaves validation, and a running job carries
  `estimated_finish`;
- files can be deleted (`delete_file(id)`), as the provider's retention or a person may do;
- `import_reads = n`: a new file is imported in the background, as Azure does: its status is `pending`,
  then `running` for its first n retrieves, then `processed`; with `refuse_unprocessed` a job naming a
  file not yet processed is refused (400 invalidPayload, Azure's answer);
- `model_name_style = "azure"`: fine-tuned models are named `BASE.ft-<hex>` (Azure's form), not `ft:BASE:...`;
- HTTP 429/5xx before any handler: `api.script(...)` from base.py.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time

from tests.openai_standin.base import Request, Response, StandIn, api_error

PROGRESSION = ["validating_files", "queued", "running", "succeeded"]
# One counter for every stand-in in the process: ids are unique across accounts, as the real API's are.
_IDS = itertools.count(1)


class FineTuningAPI:
    def __init__(self):
        self.lock = threading.Lock()
        self.ids = _IDS
        self.files: dict[str, dict] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.uploads: dict[str, dict] = {}
        self.parts: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.checkpoints: dict[str, list[dict]] = {}
        self.fail_jobs_with: tuple[str, str] | None = None
        self.fail_at = "validating_files"  # the job fails on leaving this status
        self.create_lands_then_500 = 0
        self.apply_metadata_filter = True
        self.result_base64 = True
        self.steps = 6
        self.create_delay = 0.0
        self.stale_reads = 0
        self.snapshots: dict[str, dict] = {}
        self.refuse_lines: dict[str, dict[int, str]] = {}
        self.refusal_style = "per_line"
        self.resolved = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}
        self.finish_after_seconds = 900
        self.import_reads = 0
        self.importing: dict[str, int] = {}
        self.refuse_unprocessed = False
        self.model_name_style = "openai"

    def delete_file(self, file_id: str) -> None:
        with self.lock:
            self.files.pop(file_id, None)
            self.file_bytes.pop(file_id, None)

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):04d}"

    # --- files -------------------------------------------------------------------------------
    def _file(self, filename: str, data: bytes, purpose: str) -> dict:
        file_id = self._id("file")
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        if self.import_reads > 0 and purpose == "fine-tune":
            obj["status"] = "pending"
            self.importing[file_id] = self.import_reads
        self.files[file_id] = obj
        self.file_bytes[file_id] = data
        return obj

    def files_create(self, request: Request):
        form = request.form()
        filename, data = form["file"]
        with self.lock:
            return self._file(filename, data, form.get("purpose", "fine-tune"))

    def files_retrieve(self, request: Request):
        with self.lock:
            obj = self.files.get(request.params["file_id"])
            if obj is None:
                return api_error(404, f"No such File object: {request.params['file_id']}")
            left = self.importing.get(obj["id"])
            if left is not None:
                # The import goes on in the background: each look finds it one step further.
                self.importing[obj["id"]] = left - 1
                obj["status"] = "running" if left > 1 else "processed"
                if left <= 1:
                    del self.importing[obj["id"]]
            return dict(obj)

    def files_content(self, request: Request):
        data = self.file_bytes.get(request.params["file_id"])
        return Response(200, data) if data is not None else api_error(404, "No such File object")

    # --- uploads -----------------------------------------------------------------------------
    def uploads_create(self, request: Request):
        body = request.json()
        with self.lock:
            upload_id = self._id("upload")
            self.uploads[upload_id] = {
                "id": upload_id,
                "object": "upload",
                "bytes": body["bytes"],
                "filename": body["filename"],
                "purpose": body["purpose"],
                "status": "pending",
                "created_at": int(time.time()),
                "expires_at": int(time.time()) + 3600,
                "file": None,
                "part_ids": [],
            }
            return self.uploads[upload_id]

    def uploads_part(self, request: Request):
        _, data = request.form()["data"]
        with self.lock:
            part_id = self._id("part")
            self.parts[part_id] = data
            self.uploads[request.params["upload_id"]]["part_ids"].append(part_id)
        return {
            "id": part_id,
            "object": "upload.part",
            "created_at": int(time.time()),
            "upload_id": request.params["upload_id"],
        }

    def uploads_complete(self, request: Request):
        upload = self.uploads[request.params["upload_id"]]
        part_ids = request.json()["part_ids"]
        data = b"".join(self.parts[p] for p in part_ids)
        if len(data) != upload["bytes"]:
            return api_error(400, f"Upload has {len(data)} bytes, expected {upload['bytes']}")
        with self.lock:
            upload["file"] = self._file(upload["filename"], data, upload["purpose"])
            upload["status"] = "completed"
        return {k: v for k, v in upload.items() if k != "part_ids"}

    # --- jobs --------------------------------------------------------------------------------
    def _event(self, job_id: str, message: str, *, type_="message", data=None, level="info"):
        event = {
            "id": self._id("ftevent"),
            "object": "fine_tuning.job.event",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "type": type_,
            "data": data or {},
        }
        self.events.setdefault(job_id, []).append(event)

    def jobs_create(self, request: Request):
        body = request.json()
        if body.get("training_file") not in self.files:
            return api_error(
                400,
                f"invalid training_file: {body.get('training_file')}",
                param="training_file",
                code="invalid_request_error",
            )
        if len(body.get("suffix") or "") > 64:
            return api_error(400, "suffix is too long", param="suffix")
        if self.refuse_unprocessed:
            for key in ("training_file", "validation_file"):
                file = self.files.get(body.get(key) or "")
                if file is not None and file["status"] != "processed":
                    return Response(
                        400,
                        {
                            "error": {
                                "code": "invalidPayload",
                                "message": "The specified file reference must point to a completed file import.",
                            }
                        },
                    )
        with self.lock:
            job_id = self._id("ftjob")
            hyper = ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
            self.jobs[job_id] = {
                "id": job_id,
                "object": "fine_tuning.job",
                "created_at": int(time.time()),
                "error": None,
                "fine_tuned_model": None,
                "finished_at": None,
                "hyperparameters": {
                    k: hyper.get(k, "auto") for k in ("n_epochs", "batch_size", "learning_rate_multiplier")
                },
                "model": body["model"],
                "organization_id": "org-standin",
                "result_files": [],
                "seed": body.get("seed") or 42,
                "status": "validating_files",
                "trained_tokens": None,
                "training_file": body["training_file"],
                "validation_file": body.get("validation_file"),
                "metadata": body.get("metadata") or {},
                "method": body.get("method"),
                "suffix": body.get("suffix"),
            }
            self._event(job_id, f"Created fine-tuning job: {job_id}")
            job = dict(self.jobs[job_id])
            self.snapshots[job_id] = dict(job)
            lands_then_fails = self.create_lands_then_500 > 0
            if lands_then_fails:
                self.create_lands_then_500 -= 1
        if lands_then_fails:
            return api_error(500, "The server had an error while processing your request.", type_="server_error")
        return Response(200, job, delay=self.create_delay)

    def _advance(self, job: dict) -> None:
        status = job["status"]
        if status not in PROGRESSION or status == "succeeded":
            return
        if self.fail_jobs_with and status == self.fail_at:
            code, message = self.fail_jobs_with
            job.update(
                status="failed",
                error={"code": code, "message": message, "param": "training_file"},
                finished_at=int(time.time()),
            )
            self._event(job["id"], message, level="error")
            return
        job["status"] = PROGRESSION[PROGRESSION.index(status) + 1]
        if job["status"] == "queued":
            # "auto" becomes the provider's choice, in both places the API reports hyperparameters.
            chosen = {k: (self.resolved[k] if v == "auto" else v) for k, v in job["hyperparameters"].items()}
            job["hyperparameters"] = chosen
            job["method"] = {"type": "supervised", "supervised": {"hyperparameters": dict(chosen)}}
        if job["status"] == "running":
            job["estimated_finish"] = int(time.time()) + self.finish_after_seconds
            self._event(job["id"], "Fine-tuning job started")
            self._refusal_events(job)
            for step in range(1, self.steps + 1):
                data = {
                    "step": step,
                    "train_loss": round(2.0 / step, 4),
                    "total_steps": self.steps,
                    "train_mean_token_accuracy": round(0.5 + step / 20, 4),
                }
                if step % 2 == 0:
                    data.update(valid_loss=round(2.2 / step, 4), valid_mean_token_accuracy=round(0.45 + step / 20, 4))
                self._event(
                    job["id"],
                    f"Step {step}/{self.steps}: training loss={data['train_loss']}",
                    type_="metrics",
                    data=data,
                )
        if job["status"] == "succeeded":
            suffix = job.get("suffix") or "custom"
            if self.model_name_style == "azure":
                job["fine_tuned_model"] = f"{job['model']}.ft-{job['id'][-4:]}{'0' * 28}"
            else:
                job["fine_tuned_model"] = f"ft:{job['model']}:standin:{suffix}:{job['id'][-4:]}"
            job["trained_tokens"] = 123_456
            job["finished_at"] = int(time.time())
            lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"]
            for step in range(1, self.steps + 1):
                valid = f"{round(2.2 / step, 4)},{round(0.45 + step / 20, 4)}" if step % 2 == 0 else ","
                lines.append(f"{step},{round(2.0 / step, 4)},{round(0.5 + step / 20, 4)},{valid}")
            csv_bytes = ("\n".join(lines) + "\n").encode()
            result = self._file(
                "step_metrics.csv",
                base64.b64encode(csv_bytes) if self.result_base64 else csv_bytes,
                "fine-tune-results",
            )
            job["result_files"] = [result["id"]]
            for n in range(1, 4):
                step = self.steps * n // 3
                self.checkpoints.setdefault(job["id"], []).insert(
                    0,
                    {
                        "id": f"ftckpt-{job['id']}-{n}",
                        "object": "fine_tuning.job.checkpoint",
                        "created_at": int(time.time()),
                        "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{step}",
                        "fine_tuning_job_id": job["id"],
                        "step_number": step,
                        "metrics": {"step": step, "train_loss": round(2.0 / step, 4)},
                    },
                )
            self._event(job["id"], "The job has successfully completed")

    def _refusal_events(self, job: dict) -> None:
        names = {"train": "training file", "validation": "validation file"}
        for split, lines in self.refuse_lines.items():
            if not lines:
                continue
            if self.refusal_style == "summary":
                numbers = ", ".join(str(n) for n in sorted(lines))
                reason = next(iter(lines.values()))
                self._event(
                    job["id"],
                    f"Skipped {len(lines)} examples in the {names[split]} because {reason}: lines {numbers}",
                    level="warn",
                )
                continue
            for line, reason in sorted(lines.items()):
                self._event(
                    job["id"],
                    f"Example at line {line} of the {names[split]} was skipped: {reason}",
                    level="warn",
                    data={"line": line, "file": job["training_file" if split == "train" else "validation_file"]},
                )

    def jobs_retrieve(self, request: Request):
        with self.lock:
            job = self.jobs.get(request.params["job_id"])
            if job is None:
                return api_error(
                    404, f"Could not find fine-tune: {request.params['job_id']}", code="fine_tune_not_found"
                )
            if self.stale_reads > 0 and job["id"] in self.snapshots:
                self.stale_reads -= 1
                return dict(self.snapshots[job["id"]])
            self._advance(job)
            return dict(job)

    def jobs_list(self, request: Request):
        jobs = sorted(self.jobs.values(), key=lambda j: j["id"], reverse=True)
        if self.apply_metadata_filter:
            for key, values in request.query.items():
                if key.startswith("metadata[") and key.endswith("]"):
                    jobs = [j for j in jobs if (j.get("metadata") or {}).get(key[9:-1]) == values[0]]
        return self._page(jobs, request)

    def _page(self, items: list[dict], request: Request):
        after = request.q("after")
        if after:
            ids = [i["id"] for i in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.q("limit", "20"))
        return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}

    def jobs_cancel(self, request: Request):
        with self.lock:
            job = self.jobs.get(request.params["job_id"])
            if job is None:
                return api_error(404, "Could not find fine-tune")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return api_error(400, f"Job has already finished: {job['status']}")
            job["status"] = "cancelled"
            job["finished_at"] = int(time.time())
            self._event(job["id"], "Fine-tuning job cancelled")
            return dict(job)

    def jobs_events(self, request: Request):
        events = list(reversed(self.events.get(request.params["job_id"], [])))  # newest first, like the API
        return self._page(events, request)

    def jobs_checkpoints(self, request: Request):
        return self._page(self.checkpoints.get(request.params["job_id"], []), request)

    # --- wiring ------------------------------------------------------------------------------
    def install(self, api: StandIn) -> "FineTuningAPI":
        # The same routes answer Azure OpenAI's paths ({endpoint}/openai/...?api-version=...).
        AZURE = "(?:/openai)?"
        api.route("POST", AZURE + "/files")(self.files_create)
        api.route("GET", AZURE + "/files/(?P<file_id>[^/]+)")(self.files_retrieve)
        api.route("GET", AZURE + "/files/(?P<file_id>[^/]+)/content")(self.files_content)
        api.route("POST", AZURE + "/uploads")(self.uploads_create)
        api.route("POST", AZURE + "/uploads/(?P<upload_id>[^/]+)/parts")(self.uploads_part)
        api.route("POST", AZURE + "/uploads/(?P<upload_id>[^/]+)/complete")(self.uploads_complete)
        api.route("POST", AZURE + "/fine_tuning/jobs")(self.jobs_create)
        api.route("GET", AZURE + "/fine_tuning/jobs")(self.jobs_list)
        api.route("GET", AZURE + "/fine_tuning/jobs/(?P<job_id>[^/]+)")(self.jobs_retrieve)
        api.route("POST", AZURE + "/fine_tuning/jobs/(?P<job_id>[^/]+)/cancel")(self.jobs_cancel)
        api.route("GET", AZURE + "/fine_tuning/jobs/(?P<job_id>[^/]+)/events")(self.jobs_events)
        api.route("GET", AZURE + "/fine_tuning/jobs/(?P<job_id>[^/]+)/checkpoints")(self.jobs_checkpoints)
        api.fine_tuning = self
        return self


def quota_error() -> Response:
    return api_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        code="insufficient_quota",
        type_="insufficient_quota",
    )


def rate_limited(retry_after: str = "0") -> Response:
    return api_error(
        429,
        "Rate limit reached for requests",
        code="rate_limit_exceeded",
        type_="requests",
        headers={"retry-after": retry_after},
    )


def server_error() -> Response:
    return api_error(500, "The server had an error while processing your request.", type_="server_error")
