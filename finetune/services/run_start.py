"""Training runs, step 2 (the worker's part): upload the files and create the remote job, exactly once.

Exactly one remote job per run, however often a button is clicked or a worker dies:
1. `training_run_launch` (run_launch.py) moves the row draft → uploading with a conditional update (one
   winner), under a row lock, and enqueues the start job after commit.
2. `training_run_start` claims the row again for the worker (`worker_claimed_at`, conditional update) under
   a lease it renews while it works (run_start_leases.py), uploads (reusing files already on the provider),
   then looks the job up by the run id it sends as metadata before creating one, and again after every
   ambiguous failure (5xx, timeout): the create may have landed. The job id is saved the moment it is known
   (`run_job_adopt`).
3. A killed worker's lease runs out: every worker's recovery pass (gestima.recovery) starts the run again, at
   most JOB_MAX_ATTEMPTS times, and the retry adopts, by metadata, a job the dead worker had made.
   `training_runs_sync_all` (run_sync.py, one periodic job) syncs every active run, adopts such a job too, and
   starts again a run that nobody holds (Redis was away at launch).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from curation.models import DatasetMember
from curation.services.exports import ExportError, dataset_version_export_store
from finetune.models import TrainingRun, UploadedFile
from finetune.providers.base import ProviderError, get_provider
from finetune.services.run_launch import run_metadata
from finetune.services.run_start_leases import (
    training_run_start_claim,
    training_run_start_lease_renew,
    training_run_start_release,
    training_run_start_worker_lost,
)
from finetune.services.run_state import run_progress, run_status_set
from finetune.services.run_sync import run_job_adopt
from gestima.leases import lease_kept
from gestima.storage import StoredFile, runs_storage, storage_location, storage_sha256

logger = logging.getLogger(__name__)

S = TrainingRun.Status


class ExportFailed(Exception):
    """The dataset version could not be written out: the run fails with the exporter's message."""


def _export(run: TrainingRun) -> tuple[dict[str, StoredFile], dict]:
    """Write the run's files into its folder of the runs storage (a local folder or the bucket); their manifest."""
    storage = runs_storage()
    try:
        written = dataset_version_export_store(version=run.dataset_version, storage=storage, folder=str(run.pk))
    except ExportError as exc:
        raise ExportFailed(str(exc)) from exc
    except OSError as exc:
        where = storage_location(storage, str(run.pk))
        raise ExportFailed(f"Cannot write the run's files into {where}: {exc}") from exc
    # "validation" is None when the version has no validation rows.
    return {split: StoredFile(storage, name) for split, name in written.files.items() if name}, written.manifest


def _run_dir(run: TrainingRun) -> str:
    return storage_location(runs_storage(), str(run.pk))


def run_upload_splits(run: TrainingRun, *, has_validation: bool | None = None) -> list[tuple[str, str]]:
    """(split, run field) for each split the version has: a version without validation rows sends none.
    `has_validation` when the caller read it already (finetune.selectors.runs_progress_facts, for many runs)."""
    splits = [("train", "training_file_id")]
    if has_validation is None:
        has_validation = run.dataset_version.members.filter(split=DatasetMember.Split.VALIDATION).exists()
    if has_validation:
        splits.append(("validation", "validation_file_id"))
    return splits


def _carried_file_usable(run: TrainingRun, provider, *, file_id: str, account: str) -> bool:
    """A file id carried over (relaunch, retried start) is used only if it belongs to the account configured
    now and the provider still has it."""
    elsewhere = UploadedFile.objects.filter(remote_id=file_id, provider=run.provider).exclude(account__in=[account, ""])
    if elsewhere.exists():
        return False
    return provider.file_exists(file_id)


def _known_upload(run: TrainingRun, provider, *, split: str, sha: str, account: str) -> UploadedFile | None:
    """The earlier upload of these bytes to this account, if the provider still has it. Rows from before
    accounts were recorded ('') are checked the same way and then claimed for this account."""
    for known in UploadedFile.objects.filter(
        dataset_version=run.dataset_version, provider=run.provider, split=split, sha256=sha, account__in=[account, ""]
    ).order_by("-account"):
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
    splits = run_upload_splits(run)
    for split, field in splits:
        file_id = getattr(run, field)
        if file_id and not _carried_file_usable(run, provider, file_id=file_id, account=account):
            TrainingRun.objects.filter(pk=run.pk).update(**{field: ""})
            setattr(run, field, "")
    missing = [(split, field) for split, field in splits if not getattr(run, field)]
    if not missing:
        # A relaunch (or a retried start) already has its files: nothing to export or send.
        return run
    files, _ = _export(run)
    TrainingRun.objects.filter(pk=run.pk).update(run_dir=_run_dir(run))
    for split, field in missing:
        file = files.get(split)
        if file is None or not file.storage.exists(file.name) or file.size() == 0:
            continue
        sha = storage_sha256(file.storage, file.name)
        known = _known_upload(run, provider, split=split, sha=sha, account=account)
        if known is None:
            remote = provider.upload_file(path=file)
            try:
                known = UploadedFile.objects.create(
                    dataset_version=run.dataset_version,
                    provider=run.provider,
                    account=account,
                    split=split,
                    sha256=sha,
                    bytes=remote.bytes,
                    remote_id=remote.id,
                    multipart=remote.multipart,
                )
            except IntegrityError:
                known = UploadedFile.objects.get(
                    dataset_version=run.dataset_version, provider=run.provider, account=account, split=split, sha256=sha
                )
        # Stored at once: a crash after this point never uploads the split again.
        TrainingRun.objects.filter(pk=run.pk).update(**{field: known.remote_id})
    run.refresh_from_db()
    if not run.training_file_id:
        raise ProviderError("the dataset version exported no training examples", code="empty_training_file")
    return run


def _await_file_import(run: TrainingRun, provider) -> TrainingRun:
    """Wait (bounded) until the provider has imported the run's files. Azure imports an upload in the background
    and refuses a job naming a file not yet processed ("must point to a completed file import"), so without
    this the first launch of every new dataset version failed. Progress shows on the run's timeline; on timeout
    the run fails with a clear error and a relaunch reuses the files (imported by then)."""
    if not getattr(provider, "imports_files_in_background", False):
        return run
    files = [
        (split, file_id)
        for split, file_id in (("training", run.training_file_id), ("validation", run.validation_file_id))
        if file_id
    ]
    timeout = settings.RUN_FILE_IMPORT_TIMEOUT_SECONDS
    started = time.monotonic()
    waited = False
    while True:
        states = {split: (file_id, *provider.file_status(file_id)) for split, file_id in files}
        for split, (file_id, status, details) in states.items():
            if status in ("error", "failed", "deleted"):
                raise ProviderError(
                    f"The provider could not import the {split} file {file_id} ({status})"
                    + (f": {details}" if details else "")
                    + ".",
                    code="file_import_failed",
                )
        waiting = ", ".join(
            f"{split} file {status}" for split, (_, status, _) in states.items() if status != "processed"
        )
        elapsed = int(time.monotonic() - started)
        if not waiting:
            if waited:
                run = run_progress(run, f"files imported by the provider after {elapsed} s")
            return run
        if elapsed >= timeout:
            raise ProviderError(
                f"The provider had not finished importing the uploaded files after {timeout} s "
                f"({waiting}); no job was created. Relaunch the run: it reuses the uploaded files.",
                code="file_import_timeout",
            )
        run = run_progress(
            run, f"waiting for the provider to import the files ({waiting}; {elapsed} s of at most {timeout} s)"
        )
        waited = True
        time.sleep(settings.RUN_FILE_IMPORT_POLL_SECONDS)


def _create(run: TrainingRun, provider) -> TrainingRun:
    found = provider.find_job(run_id=run.pk)
    if found is not None:
        return run_job_adopt(run, found, provider, note="found by metadata")
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
                return run_job_adopt(run, found, provider, note=f"found by metadata after {exc.code}")
            continue
        return run_job_adopt(run, job, provider, note="job created")
    raise AssertionError("unreachable")


def _start_dry_run(run: TrainingRun, provider) -> TrainingRun:
    files, export_manifest = _export(run)
    split_info = {}
    for split in ("train", "validation"):
        if split in files:
            # What the export counted and hashed while writing: the file is not read back.
            written = export_manifest["files"][f"{split}.jsonl"]
            split_info[split] = {
                "file": f"{split}.jsonl",
                "bytes": written["bytes"],
                "sha256": written["sha256"],
                "lines": written["lines"],
            }
    manifest = {
        "run_id": run.pk,
        "provider": provider.name,
        "note": "Dry run: these files were written and no API was called.",
        "dataset_version": {
            "id": run.dataset_version_id,
            "name": str(run.dataset_version),
            "content_hash": run.dataset_version.content_hash,
        },
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
    provider.write_run(storage=runs_storage(), folder=str(run.pk), manifest=manifest)
    return run_status_set(run, S.DRY_RUN_COMPLETE, note="files written, no API called", run_dir=_run_dir(run))


def training_run_start(*, run_id: int) -> TrainingRun:
    """Upload and create the remote job for a launched run (the `openai` queue). Safe to run twice; the lease
    is renewed while it works, so a killed worker's run is started again by the recovery."""
    claimed_at = training_run_start_claim(run_id=run_id)
    run = TrainingRun.objects.select_related("dataset_version__dataset", "base_model").get(pk=run_id)
    if claimed_at is None:
        return run  # done already, cancelled, or another worker holds it
    with lease_kept(lambda: training_run_start_lease_renew(run_id=run_id, claimed_at=claimed_at)):
        return _start(run, claimed_at=claimed_at)


def _start(run: TrainingRun, *, claimed_at) -> TrainingRun:
    provider = get_provider(run.provider)
    try:
        if not provider.calls_api:
            return _start_dry_run(run, provider)
        run = _upload(run, provider)
        run = _await_file_import(run, provider)
        return _create(run, provider)
    except ExportFailed as exc:
        return run_status_set(
            run, S.FAILED, note="export failed", error_code="export_failed", error_message=str(exc), error_param=""
        )
    except ProviderError as exc:
        run.refresh_from_db()
        if run.job_id:
            return run
        if exc.retryable:
            # The run keeps its state; the periodic sync starts it again (and looks up by metadata first).
            training_run_start_release(run_id=run.pk, claimed_at=claimed_at, sync_error=f"{exc.code}: {exc.message}")
            run.refresh_from_db()
            return run
        return run_status_set(
            run, S.FAILED, note=exc.code, error_code=exc.code, error_message=exc.message, error_param=exc.param
        )


# RQ's report, minutes later, of a start whose worker was killed: the lease recovery retries the run (or fails it
# in words after JOB_MAX_ATTEMPTS), so the hook only ends the lease (as gestima.work's WORKER_STOPPED).
_WORKER_KILLED = ("AbandonedJobError",)
# Exceptions RQ reports when the worker itself stopped (over the queue's timeout, a shutdown): they carry no
# message of their own, so the run says in words what happened.
_WORKER_STOPPED = {
    "JobTimeoutException": "timed out",
    "StopRequested": "stopped",
    "ShutDownImminentException": "shut down",
}


def _stopped_phase(run: TrainingRun) -> str:
    if not run.training_file_id:
        return "uploading the training file"
    if not run.validation_file_id and run.dataset_version.members.filter(split=DatasetMember.Split.VALIDATION).exists():
        return "uploading the validation file"
    return "creating the fine-tuning job (its files were uploaded)"


def run_orphaned_files(run: TrainingRun) -> list[dict]:
    """Files uploaded for this run that no job uses: the provider keeps (and may bill storage for) them."""
    return [
        {"split": split, "file_id": file_id}
        for split, file_id in (("train", run.training_file_id), ("validation", run.validation_file_id))
        if file_id
    ]


def training_run_start_failed(*, run_id: int, message: str, error_type: str = "") -> None:
    """A start job died on something unexpected, or its worker stopped: the reason goes on the run, in words,
    and the run fails unless a job exists. Files uploaded but attached to no job are recorded as orphaned.
    A killed worker is not a failure yet: its lease ends and the recovery starts the run again."""
    if error_type in _WORKER_KILLED:
        training_run_start_worker_lost(run_id=run_id)
        return
    run = TrainingRun.objects.filter(pk=run_id).select_related("dataset_version").first()
    if run is None:
        return
    message = (message or "").strip()
    if error_type in _WORKER_STOPPED:
        how = _WORKER_STOPPED[error_type]
        text = (
            f"The worker stopped while {_stopped_phase(run)} ({how}); relaunch to retry, files already "
            "uploaded are reused."
        )
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
            run_job_adopt(run, found, provider, note="found by metadata after a worker error")
            TrainingRun.objects.filter(pk=run_id).update(sync_error=text)
            return
    orphans = run_orphaned_files(run) if run.status == S.UPLOADING else list(run.orphaned_files or [])
    run_status_set(
        run,
        S.FAILED,
        note="worker stopped" if code == "worker_stopped" else "worker error",
        error_code=code,
        error_message=text,
        worker_claimed_at=None,
        start_lease_until=None,
        orphaned_files=orphans,
    )
