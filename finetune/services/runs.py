"""Training runs: create, launch (confirmed, budgeted), upload + create the remote job exactly once, sync, cancel, relaunch.

Exactly one remote job per run, however often a button is clicked or a worker dies:
1. `training_run_launch` moves the row draft → uploading with a conditional update (one winner), under a
   row lock, and enqueues the start job after commit.
2. `training_run_start` claims the row again for the worker (`worker_claimed_at`, conditional update),
   uploads (reusing files already on the provider), then looks the job up by the run id it sends as
   metadata before creating one, and again after every ambiguous failure (5xx, timeout): the create may
   have landed. The job id is saved the moment it is known.
3. `training_runs_sync_all` (one periodic job) syncs every active run and adopts, by metadata, a job whose
   worker died before saving its id; a run whose claim went stale with no job anywhere is started again.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from curation.models import BaseModel, DatasetMember, DatasetVersion
from finetune.models import RunCheckpoint, RunEvent, RunMetric, TrainingRun, UploadedFile
from finetune.providers.base import ProviderError, default_provider_name, get_provider
from finetune.providers.fine_tuning import RUN_ID_KEY, RemoteJob, result_csv_rows
from gestima.queues import enqueue_on_commit

logger = logging.getLogger(__name__)

S = TrainingRun.Status
LAUNCH_PERMISSION = "finetune.launch_run"
START_JOB = "finetune.jobs.training_run_start_job"
START_FAILED_HOOK = "finetune.jobs.training_run_start_failed"

# Remote metric names -> RunMetric fields (events use the long names, the result CSV the short ones).
_METRIC_FIELDS = {
    "train_loss": "train_loss",
    "train_mean_token_accuracy": "train_accuracy",
    "train_accuracy": "train_accuracy",
    "valid_loss": "valid_loss",
    "valid_mean_token_accuracy": "valid_accuracy",
    "valid_accuracy": "valid_accuracy",
    "full_valid_loss": "full_valid_loss",
    "full_valid_mean_token_accuracy": "full_valid_accuracy",
}


class TrainingRunError(Exception):
    """A rule refused the request; the message says why and what to do."""


# --- helpers -----------------------------------------------------------------------------------

def _check_permission(user) -> None:
    # user=None is the shell operator (management commands): whoever can run manage.py owns the install.
    if user is not None and not user.has_perm(LAUNCH_PERMISSION):
        raise PermissionDenied("Only Managers may launch, cancel or relaunch training runs.")


def _timeline(run: TrainingRun, status: str, *, note: str = "") -> list:
    entry = {"status": status, "at": timezone.now().isoformat()}
    if note:
        entry["note"] = note
    return [*(run.timeline or []), entry]


def _set_status(run: TrainingRun, status: str, *, note: str = "", **fields) -> TrainingRun:
    if status != run.status:
        fields["timeline"] = _timeline(run, status, note=note)
        fields["status"] = status
        if status in S.TERMINAL and not run.finished_at and "finished_at" not in fields:
            fields["finished_at"] = timezone.now()
    if fields:
        TrainingRun.objects.filter(pk=run.pk).update(**fields, updated_at=timezone.now())
        run.refresh_from_db()
    return run


def _hyper(value, *, name: str, kind, low, high) -> str:
    if value in (None, "", TrainingRun.AUTO):
        return TrainingRun.AUTO
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise TrainingRunError(f"{name} must be a number or \"auto\", not {value!r}.")
    if not (low <= number <= high) or (kind is float and number <= 0):
        raise TrainingRunError(f"{name} must be between {low} and {high} (or \"auto\"), not {value!r}.")
    return str(number)


def run_metadata(run: TrainingRun) -> dict[str, str]:
    """What the remote job carries: our run id (to find it again) and the dataset version it trains on."""
    version = run.dataset_version
    return {
        RUN_ID_KEY: str(run.pk),
        "gestima_dataset_version": str(version.pk),
        "gestima_dataset_hash": (version.content_hash or "")[:64],
    }


def _train_tokens(version: DatasetVersion) -> int:
    total = (version.tokens or {}).get("train", {})
    if isinstance(total, dict) and total.get("total"):
        return int(total["total"])
    return sum(m.text_tokens + m.image_tokens for m in version.members.filter(split=DatasetMember.Split.TRAIN))


def _split_tokens(version: DatasetVersion, split: str) -> int:
    total = (version.tokens or {}).get(split, {})
    if isinstance(total, dict) and total.get("total"):
        return int(total["total"])
    return sum(m.text_tokens + m.image_tokens for m in version.members.filter(split=split))


def training_run_estimate(*, run: TrainingRun) -> tuple[int, Decimal | None]:
    """Billed tokens as the provider counts them (OpenAI: train split × epochs, validation not billed;
    Together adds its validation passes) and their cost in USD (None when the base model's training
    price is not known). With n_epochs "auto" the dataset's own epoch count is assumed."""
    epochs = run.hyperparameters["n_epochs"]
    if epochs == TrainingRun.AUTO:
        epochs = run.dataset_version.dataset.epochs or 1
    tokens = get_provider(run.provider).billed_tokens(
        train=_train_tokens(run.dataset_version), epochs=int(epochs), options=run.provider_options or {},
        validation=_split_tokens(run.dataset_version, DatasetMember.Split.VALIDATION))
    price = run.base_model.training_price_per_1m
    if price is None:  # not published: the cost is unknown, never $0
        return tokens, None
    cost = (Decimal(tokens) * price / Decimal(1_000_000)).quantize(Decimal("0.0001"))
    return tokens, cost


def base_model_warning(base_model: BaseModel, *, today: datetime.date | None = None) -> str:
    """'' or a warning: no new jobs after / stops serving on a date that is near or past."""
    today = today or timezone.localdate()
    notes = []
    for label, date in (("no new fine-tuning jobs after", base_model.jobs_end_date),
                        ("the model stops serving on", base_model.shutdown_date)):
        if date is None:
            continue
        days = (date - today).days
        if days < 0:
            notes.append(f"{label} {date:%Y-%m-%d} (past)")
        elif days <= settings.RUN_MODEL_DATE_WARNING_DAYS:
            notes.append(f"{label} {date:%Y-%m-%d} (in {days} days)")
    return "; ".join(notes)


def training_run_launch_problems(*, run: TrainingRun) -> list[str]:
    """Why a launch would be refused without an override (empty: it may go)."""
    problems = []
    version = run.dataset_version
    if not version.gates_passed:
        failed = [g.get("message") or g.get("name", "?") for g in (version.gates or []) if not g.get("passed")]
        problems.append("dataset gates fail" + (": " + "; ".join(failed) if failed else ""))
    if run.budget_usd is not None and run.estimated_cost_usd is not None and run.estimated_cost_usd > run.budget_usd:
        problems.append(f"estimated cost ${run.estimated_cost_usd:.2f} is over the budget ${run.budget_usd:.2f}")
    if run.budget_usd is not None and run.estimated_cost_usd is None:
        problems.append(f"the training price of {run.base_model.name} is not known, so the budget "
                        f"${run.budget_usd:.2f} cannot be checked (enter the price in Base models)")
    jobs_end = run.base_model.jobs_end_date
    if jobs_end and jobs_end < timezone.localdate() and run.provider != "dryrun":
        problems.append(f"{run.base_model.name} accepts no new fine-tuning jobs since {jobs_end:%Y-%m-%d}")
    return problems


# --- create / launch ---------------------------------------------------------------------------

def training_run_create(*, dataset_version: DatasetVersion, base_model: BaseModel, user, provider: str = "",
                        n_epochs="auto", batch_size="auto", learning_rate_multiplier="auto", suffix: str = "",
                        seed: int | None = None, budget_usd: Decimal | None = None,
                        relaunched_from: TrainingRun | None = None, training_file_id: str = "",
                        validation_file_id: str = "", provider_options: dict | None = None) -> TrainingRun:
    """A draft run with its cost estimate; nothing is sent anywhere until it is launched."""
    provider = provider or default_provider_name()
    try:
        provider_obj = get_provider(provider)
        provider_options = provider_obj.options_check(provider_options or {})
    except ProviderError as exc:
        raise TrainingRunError(exc.message)
    if provider_obj.trains_models_of is not None and base_model.provider not in provider_obj.trains_models_of:
        raise TrainingRunError(f"{base_model.name} is a base model of {base_model.provider}: the {provider} provider "
                               f"cannot train it (choose a {' or '.join(sorted(provider_obj.trains_models_of))} "
                               f"model, or the provider {base_model.provider}).")
    if n_epochs in (None, "", TrainingRun.AUTO) and not provider_obj.auto_epochs:
        # The provider has no "auto": the run gets what the estimate assumes, the dataset's epochs.
        n_epochs = dataset_version.dataset.epochs or 1
    suffix = (suffix or "").strip()
    if len(suffix) > 64:
        raise TrainingRunError(f"The suffix has {len(suffix)} characters; the provider allows at most 64.")
    run = TrainingRun(
        dataset_version=dataset_version,
        base_model=base_model,
        provider=provider,
        n_epochs=_hyper(n_epochs, name="n_epochs", kind=int, low=1, high=50),
        batch_size=_hyper(batch_size, name="batch_size", kind=int, low=1, high=256),
        learning_rate_multiplier=_hyper(learning_rate_multiplier, name="learning_rate_multiplier", kind=float,
                                        low=0, high=1000),
        suffix=suffix,
        seed=seed,
        budget_usd=budget_usd,
        relaunched_from=relaunched_from,
        training_file_id=training_file_id,
        validation_file_id=validation_file_id,
        provider_options=provider_options or {},
        created_by=user if (user is not None and user.is_authenticated) else None,
    )
    run.estimated_tokens, run.estimated_cost_usd = training_run_estimate(run=run)
    run.timeline = [{"status": S.DRAFT, "at": timezone.now().isoformat()}]
    run.save()
    return run


def training_run_launch(*, run: TrainingRun, user, override_reason: str = "") -> TrainingRun:
    """Send the run: refused while gates fail or the estimate is over budget, unless overridden with a reason.

    A second launch of the same run (double click, two managers) finds it no longer a draft and is refused.
    """
    _check_permission(user)
    reason = (override_reason or "").strip()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().select_related("dataset_version__dataset", "base_model").get(pk=run.pk)
        if run.status != S.DRAFT:
            raise TrainingRunError(f"Run {run.pk} was already launched (status: {run.status_label}); no second job is made.")
        run.estimated_tokens, run.estimated_cost_usd = training_run_estimate(run=run)
        problems = training_run_launch_problems(run=run)
        if problems and not reason:
            raise TrainingRunError("Launch refused: " + "; ".join(problems)
                                   + ". A Manager may override this with a reason, which is recorded.")
        fields = {
            "status": S.UPLOADING,
            "timeline": _timeline(run, S.UPLOADING, note="launched"),
            "launched_at": timezone.now(),
            "metadata": run_metadata(run),
            "estimated_tokens": run.estimated_tokens,
            "estimated_cost_usd": run.estimated_cost_usd,
            "updated_at": timezone.now(),
        }
        if problems:
            fields.update(override=True, override_reason=f"{reason} (overrode: {'; '.join(problems)})",
                          override_by=user if user is not None else None)
        # The conditional update is the claim (the row lock alone does nothing on SQLite).
        if TrainingRun.objects.filter(pk=run.pk, status=S.DRAFT).update(**fields) != 1:
            raise TrainingRunError(f"Run {run.pk} was launched by someone else at the same moment.")
        training_run_enqueue_start(run=run)
    run.refresh_from_db()
    return run


def training_run_enqueue_start(*, run: TrainingRun) -> None:
    from rq import Callback

    enqueue_on_commit("openai", START_JOB, run.pk, job_id=f"training-run-start-{run.pk}",
                      on_failure=Callback(START_FAILED_HOOK))


# --- the worker's part: files and the remote job -----------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export_fallback(*, version: DatasetVersion, out_dir: Path) -> dict[str, Path]:
    """Used only when curation's exporter is not installed: members' messages + target, page refs embedded."""
    import base64

    from curation.models import DrawingPage

    def embed(messages):
        out = []
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                parts = []
                for part in content:
                    url = (part.get("image_url") or {}).get("url", "") if part.get("type") == "image_url" else ""
                    if url.startswith("page:"):
                        page = DrawingPage.objects.filter(pk=url.split(":", 1)[1].split(":")[0]).first()
                        if page is not None:
                            data = base64.b64encode(page.image.read()).decode()
                            page.image.close()
                            part = {**part, "image_url": {**part["image_url"], "url": f"data:image/{page.format};base64,{data}"}}
                    parts.append(part)
                message = {**message, "content": parts}
            out.append(message)
        return out

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("train", "validation"):
        path = out_dir / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for member in version.members.filter(split=split).order_by("position"):
                line = {"messages": embed(member.messages) + [{"role": "assistant", "content": member.target}]}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        paths[split] = path
    manifest = out_dir / "manifest.json"
    manifest.write_text(json.dumps({"dataset_version": version.pk, "content_hash": version.content_hash}, indent=2))
    paths["manifest"] = manifest
    return paths


class ExportFailed(Exception):
    """The dataset version could not be written out: the run fails with the exporter's message."""


def _export(run: TrainingRun) -> dict[str, Path]:
    out_dir = Path(settings.RUNS_ROOT) / str(run.pk)
    try:
        from curation.services.exports import ExportError, dataset_version_export
    except ImportError:  # an install without curation's exporter
        return _export_fallback(version=run.dataset_version, out_dir=out_dir)
    try:
        paths = dataset_version_export(version=run.dataset_version, out_dir=out_dir)
    except ExportError as exc:
        raise ExportFailed(str(exc)) from exc
    # "validation" is None when the version has no validation rows.
    return {split: Path(path) for split, path in paths.items() if path}


def _upload(run: TrainingRun, provider) -> TrainingRun:
    """Upload each split not yet on the provider; the same version, split and bytes reuse the earlier file."""
    if run.training_file_id:
        # A relaunch (or a retried start) already has its files: nothing to export or send.
        return run
    files = _export(run)
    TrainingRun.objects.filter(pk=run.pk).update(run_dir=str(Path(settings.RUNS_ROOT) / str(run.pk)))
    for split, field in (("train", "training_file_id"), ("validation", "validation_file_id")):
        path = files.get(split)
        if path is None or not path.exists() or path.stat().st_size == 0:
            continue
        sha = _sha256(path)
        known = UploadedFile.objects.filter(dataset_version=run.dataset_version, provider=run.provider, split=split,
                                            sha256=sha).first()
        if known is None:
            remote = provider.upload_file(path=path)
            try:
                known = UploadedFile.objects.create(dataset_version=run.dataset_version, provider=run.provider,
                                                    split=split, sha256=sha, bytes=remote.bytes, remote_id=remote.id,
                                                    multipart=remote.multipart)
            except IntegrityError:
                known = UploadedFile.objects.get(dataset_version=run.dataset_version, provider=run.provider,
                                                 split=split, sha256=sha)
        # Stored at once: a crash after this point never uploads the split again.
        TrainingRun.objects.filter(pk=run.pk).update(**{field: known.remote_id})
    run.refresh_from_db()
    if not run.training_file_id:
        raise ProviderError("the dataset version exported no training examples", code="empty_training_file")
    return run


def _adopt(run: TrainingRun, job: RemoteJob, provider, *, note: str) -> TrainingRun:
    """Store the job id the moment it is known, then its state. A run cancelled meanwhile cancels the job too."""
    TrainingRun.objects.filter(pk=run.pk, job_id__isnull=True).update(job_id=job.id, updated_at=timezone.now())
    run.refresh_from_db()
    if run.job_id != job.id:
        logger.error("run %s already has job %s; remote job %s was not adopted", run.pk, run.job_id, job.id)
        return run
    if run.status == S.CANCELLED:
        try:
            job = provider.cancel_job(job.id)
        except ProviderError as exc:
            TrainingRun.objects.filter(pk=run.pk).update(sync_error=f"cancel after launch: {exc.message}")
            return run
    return _apply_job(run, job, note=note)


def _create(run: TrainingRun, provider) -> TrainingRun:
    found = provider.find_job(run_id=run.pk)
    if found is not None:
        return _adopt(run, found, provider, note="found by metadata")
    kwargs = {
        "model": run.base_model.name,
        "training_file": run.training_file_id,
        "validation_file": run.validation_file_id,
        "hyperparameters": run.hyperparameters,
        "suffix": run.suffix,
        "seed": run.seed,
        "metadata": run.metadata or run_metadata(run),
    }
    if run.provider_options:
        kwargs["options"] = run.provider_options
    attempts = max(1, settings.OPENAI_MAX_ATTEMPTS)
    for attempt in range(attempts):
        try:
            job = provider.create_job(**kwargs)
        except ProviderError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            from finetune.providers.openai import backoff_delay

            time.sleep(backoff_delay(attempt, exc.retry_after))
            # Ambiguous: a 5xx or a timeout may come after the job was made. Look before sending again.
            found = provider.find_job(run_id=run.pk)
            if found is not None:
                return _adopt(run, found, provider, note=f"found by metadata after {exc.code}")
            continue
        return _adopt(run, job, provider, note="job created")
    raise AssertionError("unreachable")


def _start_dry_run(run: TrainingRun, provider) -> TrainingRun:
    files = _export(run)
    run_dir = Path(settings.RUNS_ROOT) / str(run.pk)
    split_info = {}
    for split in ("train", "validation"):
        path = files.get(split)
        if path and path.exists():
            split_info[split] = {"file": f"{split}.jsonl", "bytes": path.stat().st_size, "sha256": _sha256(path),
                                 "lines": sum(1 for _ in path.open("rb"))}
    manifest = {
        "run_id": run.pk,
        "provider": provider.name,
        "note": "Dry run: these files were written and no API was called.",
        "dataset_version": {"id": run.dataset_version_id, "name": str(run.dataset_version),
                            "content_hash": run.dataset_version.content_hash},
        "base_model": run.base_model.name,
        "method": {"type": run.method, run.method: {"hyperparameters": run.hyperparameters}},
        "suffix": run.suffix,
        "seed": run.seed,
        "metadata": run.metadata or run_metadata(run),
        "estimated_tokens": run.estimated_tokens,
        "estimated_cost_usd": str(run.estimated_cost_usd) if run.estimated_cost_usd is not None else None,
        "budget_usd": str(run.budget_usd) if run.budget_usd is not None else None,
        "files": split_info,
        "written_at": timezone.now().isoformat(),
    }
    provider.write_run(run_dir=run_dir, files={k: files[k] for k in split_info}, manifest=manifest)
    return _set_status(run, S.DRY_RUN_COMPLETE, note="files written, no API called", run_dir=str(run_dir))


def training_run_start(*, run_id: int) -> TrainingRun:
    """Upload and create the remote job for a launched run (the `openai` queue). Safe to run twice."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=S.UPLOADING, job_id__isnull=True,
                                         worker_claimed_at__isnull=True).update(worker_claimed_at=now)
    run = TrainingRun.objects.select_related("dataset_version__dataset", "base_model").get(pk=run_id)
    if claimed != 1:
        return run  # done already, cancelled, or another worker holds it
    provider = get_provider(run.provider)
    try:
        if not provider.calls_api:
            return _start_dry_run(run, provider)
        run = _upload(run, provider)
        return _create(run, provider)
    except ExportFailed as exc:
        return _set_status(run, S.FAILED, note="export failed", error_code="export_failed", error_message=str(exc),
                           error_param="")
    except ProviderError as exc:
        run.refresh_from_db()
        if run.job_id:
            return run
        if exc.retryable:
            # The run keeps its state; the periodic sync starts it again (and looks up by metadata first).
            TrainingRun.objects.filter(pk=run.pk).update(worker_claimed_at=None, sync_error=f"{exc.code}: {exc.message}")
            run.refresh_from_db()
            return run
        return _set_status(run, S.FAILED, note=exc.code, error_code=exc.code, error_message=exc.message,
                           error_param=exc.param)


def training_run_start_failed(*, run_id: int, message: str) -> None:
    """A start job died on something unexpected: the reason goes on the run, which fails unless a job exists."""
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    if run.job_id:
        TrainingRun.objects.filter(pk=run_id).update(sync_error=message)
        return
    if run.status == S.UPLOADING:
        # The crash may have come after the job was made: look for it before calling the run failed.
        try:
            provider = get_provider(run.provider)
            found = provider.find_job(run_id=run.pk) if provider.calls_api else None
        except Exception:  # a failure hook must not fail: ft_doctor finds any job left behind
            logger.exception("lookup after the failure of run %s's start job", run_id)
            found = None
        if found is not None:
            _adopt(run, found, provider, note="found by metadata after a worker error")
            TrainingRun.objects.filter(pk=run_id).update(sync_error=message)
            return
    _set_status(run, S.FAILED, note="worker error", error_code="worker_error", error_message=message,
                worker_claimed_at=None)


# --- sync ------------------------------------------------------------------------------------

def _ts(value: int | None):
    return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc) if value else None


def _apply_job(run: TrainingRun, job: RemoteJob, *, note: str = "") -> TrainingRun:
    fields = {}
    if job.fine_tuned_model and job.fine_tuned_model != run.fine_tuned_model:
        fields["fine_tuned_model"] = job.fine_tuned_model
    if job.trained_tokens is not None:
        fields["trained_tokens"] = job.trained_tokens
        if run.base_model.training_price_per_1m is not None:  # unknown price: the cost stays unknown
            fields["actual_cost_usd"] = (Decimal(job.trained_tokens) * run.base_model.training_price_per_1m
                                         / Decimal(1_000_000)).quantize(Decimal("0.0001"))
    if job.error_code:
        fields.update(error_code=job.error_code, error_message=job.error_message, error_param=job.error_param or "")
    if job.result_files and not run.result_file_id:
        fields["result_file_id"] = job.result_files[0]
    if job.status in S.TERMINAL and job.finished_at:
        fields["finished_at"] = _ts(job.finished_at)
    return _set_status(run, job.status, note=note, **fields)


def _merge_metrics(run: TrainingRun, rows: list[dict], *, source: str) -> int:
    """Upsert per-step metrics; a value present in `rows` replaces the stored one, a missing one is kept."""
    if not rows:
        return 0
    existing = {m.step: m for m in RunMetric.objects.filter(run=run)}
    changed = {}
    for row in rows:
        step = int(row["step"])
        metric = changed.get(step) or existing.get(step) or RunMetric(run=run, step=step)
        for remote, local in _METRIC_FIELDS.items():
            value = row.get(remote)
            if value is not None:
                setattr(metric, local, float(value))
        metric.source = source if metric.pk is None else metric.source
        changed[step] = metric
    fields = sorted(set(_METRIC_FIELDS.values()))
    RunMetric.objects.bulk_update([m for m in changed.values() if m.pk], fields)
    # A concurrent sync may have stored the same step meanwhile: its copy stands.
    RunMetric.objects.bulk_create([m for m in changed.values() if not m.pk], ignore_conflicts=True)
    return len(changed)


def _sync_events(run: TrainingRun, provider) -> int:
    known = set(RunEvent.objects.filter(run=run).values_list("remote_id", flat=True))
    events = provider.list_events(run.job_id, known_ids=known)
    if not events:
        return 0
    # Stored once each: the remote id is unique, a concurrent sync's copy is ignored.
    RunEvent.objects.bulk_create(
        [RunEvent(run=run, remote_id=e.id, created_at_remote=_ts(e.created_at), level=e.level, type=e.type,
                  message=e.message, data=e.data) for e in events],
        ignore_conflicts=True,
    )
    _merge_metrics(run, [e.data for e in events if e.type == "metrics" and e.data.get("step") is not None],
                   source="event")
    return len(events)


def _sync_checkpoints(run: TrainingRun, provider) -> None:
    for checkpoint in provider.list_checkpoints(run.job_id):
        RunCheckpoint.objects.update_or_create(
            remote_id=checkpoint.id,
            defaults={"run": run, "step": checkpoint.step, "metrics": checkpoint.metrics,
                      "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
                      "created_at_remote": _ts(checkpoint.created_at)},
        )


def _sync_result_file(run: TrainingRun, provider) -> None:
    if not run.result_file_id or run.result_file_parsed:
        return
    rows = result_csv_rows(provider.result_file_content(run.result_file_id))
    _merge_metrics(run, rows, source="result_file")
    TrainingRun.objects.filter(pk=run.pk).update(result_file_parsed=True)


def training_run_sync(*, run: TrainingRun) -> TrainingRun:
    """Bring the run up to date with its remote job: status, events (once each), metrics, checkpoints,
    model, trained tokens and cost. Transient provider trouble is noted on the run, which keeps its state."""
    run = TrainingRun.objects.select_related("base_model", "dataset_version").get(pk=run.pk)
    provider = get_provider(run.provider)
    if not run.job_id:
        if run.status == S.UPLOADING:
            return training_run_reconcile(run=run)
        return run
    try:
        run = _apply_job(run, provider.retrieve_job(run.job_id))
        _sync_events(run, provider)
        _sync_checkpoints(run, provider)
        if run.status == S.SUCCEEDED:
            _sync_result_file(run, provider)
    except ProviderError as exc:
        TrainingRun.objects.filter(pk=run.pk).update(sync_error=f"{exc.code}: {exc.message}", last_synced_at=timezone.now())
        run.refresh_from_db()
        return run
    TrainingRun.objects.filter(pk=run.pk).update(sync_error="", last_synced_at=timezone.now())
    run.refresh_from_db()
    return run


def training_run_reconcile(*, run: TrainingRun) -> TrainingRun:
    """A launched run with no job id: adopt its job if one carries its run id (a worker died before saving
    it), else start it again when nobody holds it (Redis was away) or the holder's claim went stale."""
    provider = get_provider(run.provider)
    if provider.calls_api:
        try:
            found = provider.find_job(run_id=run.pk)
        except ProviderError as exc:
            TrainingRun.objects.filter(pk=run.pk).update(sync_error=f"{exc.code}: {exc.message}")
            return run
        if found is not None:
            return _adopt(run, found, provider, note="adopted by sync (found by metadata)")
    stale = timezone.now() - datetime.timedelta(seconds=settings.RUN_CLAIM_STALE_SECONDS)
    released = TrainingRun.objects.filter(pk=run.pk, status=S.UPLOADING, job_id__isnull=True).filter(
        Q(worker_claimed_at__isnull=True) | Q(worker_claimed_at__lt=stale)).update(worker_claimed_at=None)
    if released:
        try:
            training_run_enqueue_start(run=run)
        except Exception as exc:  # QueueUnavailable: the next sync tries again
            logger.warning("could not enqueue the start of run %s: %s", run.pk, exc)
    run.refresh_from_db()
    return run


def training_runs_active():
    """Runs the periodic sync looks at: a remote job not finished yet, or finished with its results not fetched."""
    return TrainingRun.objects.exclude(provider="dryrun").filter(
        Q(job_id__isnull=False) & (~Q(status__in=S.TERMINAL)
                                   | Q(status=S.SUCCEEDED, result_file_parsed=False) & ~Q(result_file_id=""))
        | Q(status=S.UPLOADING, job_id__isnull=True)
    ).select_related("base_model", "dataset_version")


def training_runs_sync_all() -> dict[str, int]:
    """The one periodic job: sync every active run, adopt or restart runs left without a job id."""
    counts = {"synced": 0, "failed": 0}
    for run in training_runs_active():
        try:
            training_run_sync(run=run)
            counts["synced"] += 1
        except Exception:  # one broken run must not stop the others
            logger.exception("sync of run %s failed", run.pk)
            counts["failed"] += 1
    # Dry runs left uploading (Redis away at launch) are restarted too.
    for run in TrainingRun.objects.filter(provider="dryrun", status=S.UPLOADING):
        training_run_reconcile(run=run)
    return counts


# --- cancel / relaunch -----------------------------------------------------------------------------

def training_run_cancel(*, run: TrainingRun, user) -> TrainingRun:
    """Cancel remotely (the provider's answer sets the status); a run with no job yet is cancelled here."""
    _check_permission(user)
    run = TrainingRun.objects.select_related("base_model").get(pk=run.pk)
    if run.is_terminal:
        raise TrainingRunError(f"Run {run.pk} has already finished ({run.status_label}).")
    if not run.job_id:
        note = "cancelled before a job existed"
        done = TrainingRun.objects.filter(pk=run.pk, job_id__isnull=True).exclude(status__in=S.TERMINAL).update(
            status=S.CANCELLED, timeline=_timeline(run, S.CANCELLED, note=note), finished_at=timezone.now())
        run.refresh_from_db()
        if done or not run.job_id:
            return run
    provider = get_provider(run.provider)
    try:
        job = provider.cancel_job(run.job_id)
    except ProviderError as exc:
        raise TrainingRunError(f"The provider refused the cancel: {exc.message}")
    return _apply_job(run, job, note="cancelled by user")


def training_run_relaunch(*, run: TrainingRun, user) -> TrainingRun:
    """A new draft run with the same settings that reuses the files already uploaded (no upload again)."""
    _check_permission(user)
    if not run.is_terminal:
        raise TrainingRunError(f"Run {run.pk} is still {run.status_label}; cancel it before relaunching.")
    return training_run_create(
        dataset_version=run.dataset_version, base_model=run.base_model, user=user, provider=run.provider,
        n_epochs=run.n_epochs, batch_size=run.batch_size, learning_rate_multiplier=run.learning_rate_multiplier,
        suffix=run.suffix, seed=run.seed, budget_usd=run.budget_usd, relaunched_from=run,
        training_file_id=run.training_file_id, validation_file_id=run.validation_file_id,
        provider_options=run.provider_options,
    )


# --- doctor ------------------------------------------------------------------------------------

def training_runs_doctor(*, provider_name: str | None = None, fix: bool = False) -> dict:
    """The provider's jobs beside our runs: orphans, runs whose job is gone, status mismatches.
    With `fix`, orphans carrying a run id of ours whose run has no job are adopted."""
    provider = get_provider(provider_name)
    report = {"provider": provider.name, "jobs": [], "orphans": [], "adopted": [], "duplicates": [], "gone": [],
              "mismatches": []}
    if not provider.calls_api:
        return report
    jobs = provider.list_jobs()
    report["jobs"] = jobs
    runs = {r.job_id: r for r in TrainingRun.objects.filter(provider=provider.name, job_id__isnull=False)}
    for job in jobs:
        run = runs.get(job.id)
        if run is None:
            report["orphans"].append(job)
            owner = TrainingRun.objects.filter(pk=job.run_id, provider=provider.name).first() if job.run_id.isdigit() else None
            if owner is not None and owner.job_id:
                report["duplicates"].append((job, owner))
            elif fix and owner is not None:
                report["adopted"].append((job, _adopt(owner, job, provider, note="adopted by ft_doctor")))
        elif run.status != job.status:
            report["mismatches"].append((run, job))
    listed = {job.id for job in jobs}
    for job_id, run in runs.items():
        if job_id in listed:
            continue
        try:
            provider.retrieve_job(job_id)
        except ProviderError as exc:
            if getattr(exc, "http_status", None) == 404:
                report["gone"].append(run)
    return report
