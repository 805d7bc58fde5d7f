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
from curation.services.base_models import base_model_lifecycle, lifecycle_today
from curation.services.datasets import TrainingCost, dataset_version_training_cost
from curation.services.exports import ExportError, dataset_version_export
from finetune.models import RunCheckpoint, RunEvent, RunMetric, TrainingRun, UploadedFile
from finetune.providers.base import ProviderError, default_provider_name, get_provider
from finetune.providers.fine_tuning import RUN_ID_KEY, RemoteEvent, RemoteJob, provider_refusals, result_csv_rows
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


def _set_status(run: TrainingRun, status: str, *, note: str = "", reopen: bool = False, **fields) -> TrainingRun:
    """Store a status (and fields). Statuses only move forward (TrainingRun.Status.moves_forward): a late or
    stale answer from the provider never takes a run back. `reopen` is the explicit exception (an operator
    adopting a job for a run that had failed); the timeline says so."""
    if status != run.status and not reopen and not S.moves_forward(run.status, status):
        logger.info("run %s: ignored a move back from %s to %s (%s)", run.pk, run.status, status, note or "no note")
        status = run.status
        fields = {k: v for k, v in fields.items() if k != "finished_at"}
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


def training_run_epochs(run: TrainingRun) -> int:
    """The epochs the estimate assumes: the run's own, or with "auto" the dataset's epoch count."""
    epochs = run.hyperparameters["n_epochs"]
    if epochs == TrainingRun.AUTO:
        epochs = run.dataset_version.dataset.epochs or 1
    return int(epochs)


def training_run_cost(*, run: TrainingRun) -> TrainingCost:
    """The run's estimate from curation's one cost function (the dataset page shows the same figure):
    the train split as this base model counts it (its encoding and image scheme) × epochs × its price,
    plus the validation passes its provider bills (Together; OpenAI bills none)."""
    has_validation = run.dataset_version.members.filter(split=DatasetMember.Split.VALIDATION).exists()
    passes = get_provider(run.provider).validation_passes(options=run.provider_options or {},
                                                          has_validation=has_validation)
    return dataset_version_training_cost(version=run.dataset_version, base_model=run.base_model,
                                         epochs=training_run_epochs(run), validation_passes=passes)


def training_run_estimate(*, run: TrainingRun) -> tuple[int, Decimal | None]:
    """Billed training tokens and their cost in USD (None when the base model's price is not known)."""
    cost = training_run_cost(run=run)
    return cost.billed_tokens, cost.usd


def training_run_launch_refusals(*, run: TrainingRun) -> list[str]:
    """Why a launch is refused whatever the override: the provider would reject the job anyway."""
    refusals = []
    problem = training_run_cost(run=run).problem
    if problem:
        refusals.append(f"{run.base_model.name}: {problem}, and {run.dataset_version} has images; choose a base model "
                        "that does (see the dataset page's cost table)")
    lifecycle = base_model_lifecycle(run.base_model)
    if lifecycle.jobs_ended() and run.provider != "dryrun":
        refusals.append(f"{run.base_model.name} accepts no new fine-tuning jobs after {lifecycle.jobs_end_date:%Y-%m-%d} "
                        f"(its jobs-end date; today is {lifecycle_today():%Y-%m-%d}): the {run.provider} provider would "
                        "refuse the job; choose another base model or provider (see \"When OpenAI fine-tuning ends\" "
                        "in the README)")
    return refusals


def training_run_over_budget(*, run: TrainingRun, cost: TrainingCost | None = None) -> bool:
    """The budget rule, in one place: a known estimate above the run's budget (an unknown price is its own
    problem, see training_run_launch_problems). `cost` defaults to the estimate stored on the run."""
    usd = cost.usd if cost is not None else run.estimated_cost_usd
    return run.budget_usd is not None and usd is not None and usd > run.budget_usd


def training_run_launch_problems(*, run: TrainingRun) -> list[str]:
    """Why a launch would be refused without an override (empty: it may go); refusals come first."""
    problems = training_run_launch_refusals(run=run)
    version = run.dataset_version
    if not version.gates_passed:
        failed = [g.get("message") or g.get("name", "?") for g in (version.gates or []) if not g.get("passed")]
        problems.append("dataset gates fail" + (": " + "; ".join(failed) if failed else ""))
    if training_run_over_budget(run=run):
        problems.append(f"estimated cost ${run.estimated_cost_usd:.2f} is over the budget ${run.budget_usd:.2f}")
    if run.budget_usd is not None and run.estimated_cost_usd is None:
        problems.append(f"the training price of {run.base_model.name} is not known, so the budget "
                        f"${run.budget_usd:.2f} cannot be checked (enter the price in Base models)")
    return problems


def training_run_duplicates(*, run: TrainingRun) -> list[TrainingRun]:
    """Paid runs that train the same thing: same dataset version, base model, provider, method, hyperparameters
    and seed, still active or succeeded. A second one is a second bill, so a launch needs it confirmed."""
    if run.provider == "dryrun":
        return []
    same = TrainingRun.objects.filter(
        dataset_version_id=run.dataset_version_id, base_model_id=run.base_model_id, provider=run.provider,
        method=run.method, n_epochs=run.n_epochs, batch_size=run.batch_size,
        learning_rate_multiplier=run.learning_rate_multiplier, seed=run.seed,
    ).exclude(pk=run.pk).exclude(status=S.DRAFT)
    return [other for other in same.order_by("id") if other.status == S.SUCCEEDED or not other.is_terminal]


def _duplicates_text(duplicates: list[TrainingRun]) -> str:
    return ", ".join(f"run {other.pk} ({other.status_label})" for other in duplicates)


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


def training_run_launch(*, run: TrainingRun, user, override_reason: str = "", allow_duplicate: bool = False,
                        duplicate_reason: str = "") -> TrainingRun:
    """Send the run: refused while gates fail or the estimate is over budget, unless overridden with a reason.

    A second launch of the same run (double click, two managers) finds it no longer a draft and is refused.
    A run identical to one active or succeeded (`training_run_duplicates`) is refused unless the duplicate is
    confirmed (`allow_duplicate`) with a reason, which goes on the timeline.
    """
    _check_permission(user)
    reason = (override_reason or "").strip()
    duplicate_reason = (duplicate_reason or "").strip()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().select_related("dataset_version__dataset", "base_model").get(pk=run.pk)
        if run.status != S.DRAFT:
            raise TrainingRunError(f"Run {run.pk} was already launched (status: {run.status_label}); no second job is made.")
        run.estimated_tokens, run.estimated_cost_usd = training_run_estimate(run=run)
        refusals = training_run_launch_refusals(run=run)
        if refusals:
            raise TrainingRunError("Launch refused: " + "; ".join(refusals) + ". No override can change this.")
        problems = training_run_launch_problems(run=run)
        if problems and not reason:
            raise TrainingRunError("Launch refused: " + "; ".join(problems)
                                   + ". A Manager may override this with a reason, which is recorded.")
        duplicates = training_run_duplicates(run=run)
        note = "launched"
        if duplicates:
            if not allow_duplicate:
                raise TrainingRunError(
                    f"Launch refused: {_duplicates_text(duplicates)} already trains the same dataset version, model "
                    "and hyperparameters; a second launch is a second paid job. Confirm the duplicate with a reason "
                    "(the checkbox on the launch page, or launch_run --allow-duplicate).")
            if not duplicate_reason:
                raise TrainingRunError("Say why the duplicate of " + _duplicates_text(duplicates)
                                       + " is wanted: the reason is recorded on the run's timeline.")
            who = getattr(user, "username", "") or "the shell"
            note = f"launched as a confirmed duplicate of {_duplicates_text(duplicates)} by {who}: {duplicate_reason}"
        fields = {
            "status": S.UPLOADING,
            "timeline": _timeline(run, S.UPLOADING, note=note),
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


class ExportFailed(Exception):
    """The dataset version could not be written out: the run fails with the exporter's message."""


def _export(run: TrainingRun) -> dict[str, Path]:
    out_dir = Path(settings.RUNS_ROOT) / str(run.pk)
    try:
        paths = dataset_version_export(version=run.dataset_version, out_dir=out_dir)
    except ExportError as exc:
        raise ExportFailed(str(exc)) from exc
    # "validation" is None when the version has no validation rows.
    return {split: Path(path) for split, path in paths.items() if path}


def _splits(run: TrainingRun) -> list[tuple[str, str]]:
    """(split, run field) for each split the version has: a version without validation rows sends none."""
    splits = [("train", "training_file_id")]
    if run.dataset_version.members.filter(split=DatasetMember.Split.VALIDATION).exists():
        splits.append(("validation", "validation_file_id"))
    return splits


def _carried_file_usable(run: TrainingRun, provider, *, file_id: str, account: str) -> bool:
    """A file id carried over (relaunch, retried start) is used only if it belongs to the account configured
    now and the provider still has it."""
    if UploadedFile.objects.filter(remote_id=file_id, provider=run.provider).exclude(account__in=[account, ""]).exists():
        return False
    return provider.file_exists(file_id)


def _known_upload(run: TrainingRun, provider, *, split: str, sha: str, account: str) -> UploadedFile | None:
    """The earlier upload of these bytes to this account, if the provider still has it. Rows from before
    accounts were recorded ('') are checked the same way and then claimed for this account."""
    for known in UploadedFile.objects.filter(dataset_version=run.dataset_version, provider=run.provider, split=split,
                                             sha256=sha, account__in=[account, ""]).order_by("-account"):
        if provider.file_exists(known.remote_id):
            if known.account != account:
                UploadedFile.objects.filter(pk=known.pk).update(account=account)
            return known
        logger.info("run %s: file %s is gone from the provider; uploading %s again", run.pk, known.remote_id, split)
        known.delete()
    return None


def _upload(run: TrainingRun, provider) -> TrainingRun:
    """Upload each split not yet on the provider; the same version, split, bytes and provider account reuse
    the earlier file, once files.retrieve shows it still exists (a new key, organisation or base URL, or a
    deleted file, means uploading again instead of a job refused with "invalid training_file")."""
    account = provider.account()
    splits = _splits(run)
    for split, field in splits:
        file_id = getattr(run, field)
        if file_id and not _carried_file_usable(run, provider, file_id=file_id, account=account):
            TrainingRun.objects.filter(pk=run.pk).update(**{field: ""})
            setattr(run, field, "")
    missing = [(split, field) for split, field in splits if not getattr(run, field)]
    if not missing:
        # A relaunch (or a retried start) already has its files: nothing to export or send.
        return run
    files = _export(run)
    TrainingRun.objects.filter(pk=run.pk).update(run_dir=str(Path(settings.RUNS_ROOT) / str(run.pk)))
    for split, field in missing:
        path = files.get(split)
        if path is None or not path.exists() or path.stat().st_size == 0:
            continue
        sha = _sha256(path)
        known = _known_upload(run, provider, split=split, sha=sha, account=account)
        if known is None:
            remote = provider.upload_file(path=path)
            try:
                known = UploadedFile.objects.create(dataset_version=run.dataset_version, provider=run.provider,
                                                    account=account, split=split, sha256=sha, bytes=remote.bytes,
                                                    remote_id=remote.id, multipart=remote.multipart)
            except IntegrityError:
                known = UploadedFile.objects.get(dataset_version=run.dataset_version, provider=run.provider,
                                                 account=account, split=split, sha256=sha)
        # Stored at once: a crash after this point never uploads the split again.
        TrainingRun.objects.filter(pk=run.pk).update(**{field: known.remote_id})
    run.refresh_from_db()
    if not run.training_file_id:
        raise ProviderError("the dataset version exported no training examples", code="empty_training_file")
    return run


def _progress(run: TrainingRun, note: str) -> TrainingRun:
    """A progress line on the timeline without a status change; a later one replaces it (no spam per poll)."""
    timeline = list(run.timeline or [])
    if timeline and timeline[-1].get("progress"):
        timeline.pop()
    timeline.append({"status": run.status, "at": timezone.now().isoformat(), "note": note, "progress": True})
    TrainingRun.objects.filter(pk=run.pk).update(timeline=timeline, updated_at=timezone.now())
    run.timeline = timeline
    return run


def _await_file_import(run: TrainingRun, provider) -> TrainingRun:
    """Wait (bounded) until the provider has imported the run's files. Azure imports an upload in the background
    and refuses a job naming a file not yet processed ("must point to a completed file import"), so without
    this the first launch of every new dataset version failed. Progress shows on the run's timeline; on timeout
    the run fails with a clear error and a relaunch reuses the files (imported by then)."""
    if not getattr(provider, "imports_files_in_background", False):
        return run
    files = [(split, file_id) for split, file_id in (("training", run.training_file_id),
                                                      ("validation", run.validation_file_id)) if file_id]
    timeout = settings.RUN_FILE_IMPORT_TIMEOUT_SECONDS
    started = time.monotonic()
    waited = False
    while True:
        states = {split: (file_id, *provider.file_status(file_id)) for split, file_id in files}
        for split, (file_id, status, details) in states.items():
            if status in ("error", "failed", "deleted"):
                raise ProviderError(f"The provider could not import the {split} file {file_id} ({status})"
                                    + (f": {details}" if details else "") + ".", code="file_import_failed")
        waiting = ", ".join(f"{split} file {status}" for split, (_, status, _) in states.items() if status != "processed")
        elapsed = int(time.monotonic() - started)
        if not waiting:
            if waited:
                run = _progress(run, f"files imported by the provider after {elapsed} s")
            return run
        if elapsed >= timeout:
            raise ProviderError(f"The provider had not finished importing the uploaded files after {timeout} s "
                                f"({waiting}); no job was created. Relaunch the run: it reuses the uploaded files.",
                                code="file_import_timeout")
        run = _progress(run, f"waiting for the provider to import the files ({waiting}; {elapsed} s of at most "
                             f"{timeout} s)")
        waited = True
        time.sleep(settings.RUN_FILE_IMPORT_POLL_SECONDS)


def _adopt(run: TrainingRun, job: RemoteJob, provider, *, note: str, reopen: bool = False) -> TrainingRun:
    """Store the job id the moment it is known, then its state. A run cancelled meanwhile cancels the job too.
    `reopen`: an operator adopts a job for a run already marked failed (its worker stopped): the run follows
    the job again (the one allowed move back, noted on the timeline)."""
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
        reopen = False
    reopen = reopen and run.status == S.FAILED
    return _apply_job(run, job, note=note + (" (the run had been marked failed)" if reopen else ""), reopen=reopen)


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
        run = _await_file_import(run, provider)
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


# Exceptions RQ reports when the worker itself stopped (killed, out of memory, over the queue's timeout):
# they carry no message of their own, so the run says in words what happened.
_WORKER_STOPPED = {"AbandonedJobError": "killed or timed out", "JobTimeoutException": "timed out",
                   "StopRequested": "stopped", "ShutDownImminentException": "shut down"}


def _stopped_phase(run: TrainingRun) -> str:
    if not run.training_file_id:
        return "uploading the training file"
    if not run.validation_file_id and run.dataset_version.members.filter(split=DatasetMember.Split.VALIDATION).exists():
        return "uploading the validation file"
    return "creating the fine-tuning job (its files were uploaded)"


def _orphans(run: TrainingRun) -> list[dict]:
    """Files uploaded for this run that no job uses: the provider keeps (and may bill storage for) them."""
    return [{"split": split, "file_id": file_id}
            for split, file_id in (("train", run.training_file_id), ("validation", run.validation_file_id)) if file_id]


def training_run_start_failed(*, run_id: int, message: str, error_type: str = "") -> None:
    """A start job died on something unexpected, or its worker stopped: the reason goes on the run, in words,
    and the run fails unless a job exists. Files uploaded but attached to no job are recorded as orphaned."""
    run = TrainingRun.objects.filter(pk=run_id).select_related("dataset_version").first()
    if run is None:
        return
    message = (message or "").strip()
    if error_type in _WORKER_STOPPED:
        how = _WORKER_STOPPED[error_type]
        text = (f"The worker stopped while {_stopped_phase(run)} ({how}); relaunch to retry, files already "
                "uploaded are reused.")
        code = "worker_stopped"
        if message:
            text += f" ({error_type}: {message})"
    else:
        text = f"{error_type}: {message}" if error_type else message
        code = "worker_error"
    if run.job_id:
        TrainingRun.objects.filter(pk=run_id).update(sync_error=text)
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
            TrainingRun.objects.filter(pk=run_id).update(sync_error=text)
            return
    orphans = _orphans(run) if run.status == S.UPLOADING else list(run.orphaned_files or [])
    _set_status(run, S.FAILED, note="worker stopped" if code == "worker_stopped" else "worker error",
                error_code=code, error_message=text, worker_claimed_at=None, orphaned_files=orphans)


# --- sync ------------------------------------------------------------------------------------

def _ts(value: int | None):
    return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc) if value else None


def _apply_job(run: TrainingRun, job: RemoteJob, *, note: str = "", reopen: bool = False) -> TrainingRun:
    fields = {}
    # Merged, not replaced: a stale answer (taken before "auto" was resolved) never loses resolved values.
    resolved = {**(run.resolved_hyperparameters or {}), **job.hyperparameters}
    if resolved != (run.resolved_hyperparameters or {}):
        fields["resolved_hyperparameters"] = resolved
    if job.estimated_finish:
        fields["estimated_finish_at"] = _ts(job.estimated_finish)
    if not job.error_code and job.status != S.FAILED and (run.error_code or run.error_message or run.error_param):
        # The run moved on: an error from an earlier attempt (a stopped worker, a failed start) no longer holds.
        fields.update(error_code="", error_message="", error_param="")
    attached = {job.training_file, job.validation_file} - {""}
    if run.orphaned_files and attached:
        kept = [entry for entry in run.orphaned_files if entry.get("file_id") not in attached]
        if kept != run.orphaned_files:
            fields["orphaned_files"] = kept
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
    elif reopen and run.finished_at:
        fields["finished_at"] = None
    return _set_status(run, job.status, note=note, reopen=reopen, **fields)


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


def _sync_refusals(run: TrainingRun) -> list[dict]:
    """What the provider dropped or refused (events, a failed job's error), tied to the dataset members on
    those exported lines and flagged on their examples (curation leaves them out of the next build)."""
    from curation.selectors import dataset_version_export_lines
    from curation.services.examples import examples_flag_provider_refused

    events = [RemoteEvent(id=e.remote_id, created_at=None, level=e.level, type=e.type, message=e.message, data=e.data)
              for e in RunEvent.objects.filter(run=run).exclude(type="metrics")]
    refusals = provider_refusals(events=events, error_code=run.error_code, error_message=run.error_message,
                                 error_param=run.error_param)
    if not refusals:
        return run.provider_refusals or []
    lines = {split: dataset_version_export_lines(version=run.dataset_version, split=split)
             for split in {r.split for r in refusals}}
    recorded = []
    for refusal in refusals:
        members = lines[refusal.split]
        member_id, example_id = members[refusal.line - 1] if refusal.line <= len(members) else (None, None)
        recorded.append({"split": refusal.split, "line": refusal.line, "member_id": member_id,
                         "example_id": example_id, "reason": refusal.reason, "source": refusal.source})
    if recorded != (run.provider_refusals or []):
        TrainingRun.objects.filter(pk=run.pk).update(provider_refusals=recorded)
        run.provider_refusals = recorded
        examples_flag_provider_refused(reasons={
            r["example_id"]: f"Run {run.pk} ({run.provider}), {r['split']} line {r['line']}: {r['reason']}"
            for r in recorded if r["example_id"]})
    return recorded


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
        if _sync_events(run, provider) or run.status == S.FAILED:
            _sync_refusals(run)
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
                report["adopted"].append((job, _adopt(owner, job, provider, note="adopted by ft_doctor", reopen=True)))
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
