"""The lease on a run's start (export, upload, job creation): claimed by one worker, renewed while it works, and
taken back by the recovery (gestima.recovery) once it has run out, because the worker was killed.

A run whose start lease ran out (status `uploading`, no job id) is started again, at most JOB_MAX_ATTEMPTS
starts whose worker died; then it fails in words. The retry never makes a second paid job: the start looks the
job up by the run id it carries (`run_start._create`) before creating one, and so adopts the job a killed
worker had made; files whose id is stored are not uploaded again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from finetune.models import TrainingRun
from finetune.services.run_launch import START_QUEUE, start_job_id, training_run_enqueue_start
from finetune.services.run_state import run_progress, run_status_set
from gestima.leases import lease_kept, lease_until, worker_stopped_message
from gestima.queues import job_forget

logger = logging.getLogger(__name__)

S = TrainingRun.Status

STOPPED_DOING = "starting this run"
STOPPED_AGAIN = "Relaunch"
STOPPED_THEN = "files already uploaded are reused"


def _startable(run_id: int):
    return TrainingRun.objects.filter(pk=run_id, status=S.UPLOADING, job_id__isnull=True)


def training_run_start_claim(*, run_id: int) -> datetime | None:
    """uploading, unclaimed → claimed by this worker under a fresh lease; the claim time (the token that renews
    it), or None when the run is done, cancelled, or another worker holds it."""
    now = timezone.now()
    claimed = (
        _startable(run_id)
        .filter(worker_claimed_at__isnull=True)
        .update(worker_claimed_at=now, start_lease_until=lease_until(), start_attempts=F("start_attempts") + 1)
    )
    return now if claimed == 1 else None


def training_run_start_lease_renew(*, run_id: int, claimed_at: datetime) -> int:
    """0 once the run has its job, failed, or was taken back from this worker: the heartbeat stops."""
    return _startable(run_id).filter(worker_claimed_at=claimed_at).update(start_lease_until=lease_until())


def training_run_start_release(*, run_id: int, claimed_at: datetime, sync_error: str) -> int:
    """The start ended without a job and without dying (a retryable provider error): the claim is released for the
    periodic sync to start again, and this start is not counted among those whose worker stopped."""
    return (
        _startable(run_id)
        .filter(worker_claimed_at=claimed_at)
        .update(
            worker_claimed_at=None,
            start_lease_until=None,
            start_attempts=F("start_attempts") - 1,
            sync_error=sync_error,
        )
    )


def training_run_start_worker_lost(*, run_id: int) -> None:
    """RQ saw the start's worker die (AbandonedJobError): end the lease so the next recovery pass takes it back."""
    _startable(run_id).filter(worker_claimed_at__isnull=False).update(
        start_lease_until=timezone.now() - timedelta(seconds=1)
    )


def _abandoned():
    return (
        TrainingRun.objects.filter(status=S.UPLOADING, job_id__isnull=True, worker_claimed_at__isnull=False)
        .filter(Q(start_lease_until__lt=timezone.now()) | Q(start_lease_until__isnull=True))
        .order_by("pk")
    )


def training_run_starts_abandoned_recover() -> dict[str, list[int]]:
    """Start again (or, after JOB_MAX_ATTEMPTS, adopt the job a dead worker made or fail in words) every run whose
    start lease ran out. The dead start job is deleted from Redis first: RQ keeps it `started` for minutes and
    would block the new one."""
    outcome = {"queued": [], "failed": [], "adopted": []}
    for row in _abandoned().only("pk", "start_attempts", "start_lease_until", "worker_claimed_at"):
        taken = _startable(row.pk).filter(
            worker_claimed_at=row.worker_claimed_at, start_lease_until=row.start_lease_until
        )
        if row.start_attempts >= settings.JOB_MAX_ATTEMPTS:
            # Held for as long as the look-up takes, so the recovery of another worker leaves it alone meanwhile.
            held = timezone.now()
            if not taken.update(worker_claimed_at=held, start_lease_until=lease_until()):
                continue
            with lease_kept(lambda pk=row.pk, held=held: training_run_start_lease_renew(run_id=pk, claimed_at=held)):
                done = _give_up(row.pk, attempts=row.start_attempts)
            job_forget(queue_name=START_QUEUE, job_id=start_job_id(row.pk))
            outcome[done].append(row.pk)
            continue
        if not taken.update(worker_claimed_at=None, start_lease_until=None):
            continue  # another worker's recovery took it, or the run moved on
        job_forget(queue_name=START_QUEUE, job_id=start_job_id(row.pk))
        run = TrainingRun.objects.get(pk=row.pk)
        run_progress(
            run,
            f"the worker stopped while starting this run (start {row.start_attempts} of at most "
            f"{settings.JOB_MAX_ATTEMPTS}); started again",
        )
        logger.warning("run %s: its start's worker stopped; queued again", row.pk)
        outcome["queued"].append(row.pk)
        try:
            training_run_enqueue_start(run=run)
        except Exception as exc:  # noqa: BLE001 - QueueUnavailable: the periodic sync starts an unclaimed run
            logger.warning("could not enqueue the start of run %s: %s", row.pk, exc)
    return outcome


def _give_up(run_id: int, *, attempts: int) -> str:
    """The last start died too: adopt its job if the provider has one with this run id (the kill came after the
    create), else the run fails in words, listing the uploaded files no job uses."""
    from finetune.providers.base import get_provider
    from finetune.services.run_start import run_orphaned_files
    from finetune.services.run_sync import run_job_adopt

    run = TrainingRun.objects.select_related("dataset_version", "base_model").get(pk=run_id)
    provider = get_provider(run.provider)
    try:
        found = provider.find_job(run_id=run.pk) if provider.calls_api else None
    except Exception:  # noqa: BLE001 - provider away: the run fails now, and ft_doctor finds a job left behind
        logger.exception("run %s: looking up its job after its worker stopped", run_id)
        found = None
    if found is not None:
        run_job_adopt(run, found, provider, note="found by metadata after its worker stopped")
        TrainingRun.objects.filter(pk=run_id).update(start_lease_until=None)
        return "adopted"
    run_status_set(
        run,
        S.FAILED,
        note="worker stopped",
        error_code="worker_stopped",
        error_message=worker_stopped_message(
            doing=STOPPED_DOING, attempts=attempts, again=STOPPED_AGAIN, then=STOPPED_THEN
        ),
        error_param="",
        worker_claimed_at=None,
        start_lease_until=None,
        orphaned_files=run_orphaned_files(run),
    )
    return "failed"
