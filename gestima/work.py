"""Rows that record work run by a worker: status, done/total progress, error, lease (claim, progress, fail, recover).

Each row model (curation.DatasetBuild, curation.ProductionImport, finetune.Estimate) has the fields `status`
(WorkStatus), `done`, `total`, `error`, `lease_until` and `attempts`; these functions are the one place the
status moves, with conditional UPDATEs so two workers (or a worker and the recovery) never both take a row.
Each service declares its wiring once as a `WorkKind` (queue, job, failure hook, job id, recovery words).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from rq import Callback

from gestima.progress import Progress
from gestima.leases import lease_until, worker_stopped_message
from gestima.queues import QueueUnavailable, enqueue_on_commit, job_forget, job_is_pending

logger = logging.getLogger(__name__)

# Progress is written at most this often (and at the end): a 40,000-line file costs a few dozen UPDATEs.
PROGRESS_EVERY_SECONDS = 1.0
# A row's job reaches Redis just after the commit that made the row: a request reading the row in between
# (a simultaneous second click) must not take it for lost and queue it again.
JOB_SEND_GRACE = timedelta(seconds=10)


class WorkStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE = (WorkStatus.QUEUED, WorkStatus.RUNNING)
FINISHED = (WorkStatus.DONE, WorkStatus.FAILED)

# What RQ reports, minutes later, for a job whose worker was killed: the row's lease recovery (retry, or fail in
# words) handles it, not the job's own failure text.
WORKER_STOPPED = ("AbandonedJobError",)


def work_claim(model, *, pk: int) -> bool:
    """queued → running under a fresh lease; False when another worker has it or it is finished."""
    return (
        model.objects.filter(pk=pk, status=WorkStatus.QUEUED).update(
            status=WorkStatus.RUNNING, error="", lease_until=lease_until(), attempts=F("attempts") + 1
        )
        == 1
    )


def work_lease_renew(model, *, pk: int) -> int:
    return model.objects.filter(pk=pk, status=WorkStatus.RUNNING).update(lease_until=lease_until())


def work_progress(model, *, pk: int) -> Callable[..., None]:
    """A `progress(done, total)` callback that writes the row at most every PROGRESS_EVERY_SECONDS."""
    last = [0.0]

    def record(done: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - last[0] >= PROGRESS_EVERY_SECONDS or done >= total:
            last[0] = now
            model.objects.filter(pk=pk, status=WorkStatus.RUNNING).update(done=done, total=total)

    return record


def work_fail(model, *, pk: int, error: str) -> int:
    """Store why the work failed (never over a finished row); also the job's on_failure hook's call."""
    return (
        model.objects.filter(pk=pk)
        .exclude(status=WorkStatus.DONE)
        .update(status=WorkStatus.FAILED, error=(error or "the job failed")[:5000], lease_until=None)
    )


def work_worker_lost(model, *, pk: int) -> None:
    """RQ saw the worker die: end the lease so the next recovery pass takes the row back."""
    model.objects.filter(pk=pk, status=WorkStatus.RUNNING).update(lease_until=timezone.now() - timedelta(seconds=1))


def work_is_active(row, *, queue_name: str, job_id: str) -> bool:
    """Is the row's work really under way? A `queued` row with no job in Redis (and older than JOB_SEND_GRACE),
    or a `running` one whose lease ran out, is not: a new request may take it over."""
    if row.status == WorkStatus.RUNNING:
        return row.lease_until is None or row.lease_until >= timezone.now()
    if row.status == WorkStatus.QUEUED:
        created = getattr(row, "created_at", None)
        if created is not None and timezone.now() - created < JOB_SEND_GRACE:
            return True  # just made: its job is sent right after the commit that made the row, not yet in Redis
        try:
            return job_is_pending(queue_name=queue_name, job_id=job_id)
        except Exception:  # noqa: BLE001 - Redis away: the caller's own ping says so
            return True
    return False


def work_abandoned_recover(
    model, *, doing: str, again: str, queue_name: str, job_id: Callable[[int], str], enqueue: Callable[[int], None]
) -> dict[str, list[int]]:
    """Queue again (or fail in words after JOB_MAX_ATTEMPTS) the rows left `running` by a worker that is gone.

    The dead job is deleted from Redis first: RQ keeps it `started` for minutes and would block the new one.
    """
    rows = model.objects.filter(status=WorkStatus.RUNNING).filter(
        Q(lease_until__lt=timezone.now()) | Q(lease_until__isnull=True)
    )
    outcome = {"queued": [], "failed": []}
    for row in rows.only("pk", "attempts", "lease_until"):
        taken = model.objects.filter(pk=row.pk, status=WorkStatus.RUNNING, lease_until=row.lease_until)
        if row.attempts >= settings.JOB_MAX_ATTEMPTS:
            message = worker_stopped_message(doing=doing, attempts=row.attempts, again=again)
            if taken.update(status=WorkStatus.FAILED, error=message, lease_until=None):
                job_forget(queue_name=queue_name, job_id=job_id(row.pk))
                outcome["failed"].append(row.pk)
            continue
        if taken.update(status=WorkStatus.QUEUED, lease_until=None):
            job_forget(queue_name=queue_name, job_id=job_id(row.pk))
            logger.warning("%s %s: its worker stopped; queued again", model.__name__, row.pk)
            outcome["queued"].append(row.pk)
            try:
                enqueue(row.pk)
            except QueueUnavailable:
                logger.warning("Redis is away: %s %s stays queued", model.__name__, row.pk)
    return outcome


def work_percent(row) -> int:
    return 100 * row.done // row.total if row.total else 0


def work_progress_text(row) -> str:
    """The progress line every page (and its live JSON) shows for a work row."""
    stage = f" ({row.stage})" if row.stage and row.status in ACTIVE else ""
    if row.status == WorkStatus.QUEUED:
        return f"Queued{stage}"
    if row.status == WorkStatus.RUNNING:
        counted = f": {row.done:,} / {row.total:,} ({work_percent(row)}%)" if row.total else ""
        return f"Running{counted}{stage}"
    return row.get_status_display()


def work_row_progress(row) -> Progress:
    """A work row's progress (the text and its bar; a finished row's bar is full)."""
    return Progress(work_progress_text(row), 100 if row.status == WorkStatus.DONE else work_percent(row))


def work_live_state(row) -> dict:
    """What a live page (gestima.live, static/gestima/live.js) updates while the row's work is under way."""
    from gestima.live import live_state

    progress = work_row_progress(row)
    return live_state(
        status=row.status,
        active=row.status in ACTIVE,
        fields={"progress": progress.text},
        bars={"progress": progress.percent},
    )


@dataclass(frozen=True)
class WorkKind:
    """The wiring of one kind of work row: its model, queue, job and failure hook (by dotted path: services never
    import jobs), job id, and the words the recovery uses. Each service declares one; everything that queues,
    claims, recovers or fails its rows goes through it."""

    model: type[models.Model]
    queue: str
    job: str
    failure_hook: str
    job_id_prefix: str
    doing: str  # "The worker stopped while <doing>"
    again: str  # what the person does after JOB_MAX_ATTEMPTS
    stopped: str  # "<stopped>: <exception>" when the job crashes or times out

    def job_id(self, pk: int) -> str:
        return f"{self.job_id_prefix}-{pk}"

    def queue_job(self, pk: int) -> None:
        """Queue the row's job after commit (QueueUnavailable when Redis does not answer now)."""
        enqueue_on_commit(self.queue, self.job, pk, job_id=self.job_id(pk), on_failure=Callback(self.failure_hook))

    def is_active(self, row) -> bool:
        return work_is_active(row, queue_name=self.queue, job_id=self.job_id(row.pk))

    def requeue(self, row):
        """Queue again a row whose job was lost (Redis lost it, or its worker died before the recovery ran)."""
        self.model.objects.filter(pk=row.pk).update(status=WorkStatus.QUEUED, lease_until=None)
        self.queue_job(row.pk)
        row.refresh_from_db()
        return row

    def claim(self, pk: int) -> bool:
        return work_claim(self.model, pk=pk)

    def lease_renew(self, pk: int) -> int:
        return work_lease_renew(self.model, pk=pk)

    def progress(self, pk: int) -> Callable[..., None]:
        return work_progress(self.model, pk=pk)

    def fail(self, pk: int, *, error: str) -> int:
        return work_fail(self.model, pk=pk, error=error)

    def job_failed(self, pk: int, *, exc_type, exc_value) -> None:
        """The job's on_failure hook: a killed worker ends the lease (the recovery retries); a crash or an RQ
        timeout is stored on the row instead of leaving it `running`."""
        if exc_type.__name__ in WORKER_STOPPED:
            work_worker_lost(self.model, pk=pk)
        else:
            self.fail(pk, error=f"{self.stopped}: {exc_type.__name__}: {exc_value}")

    def recover(self) -> dict[str, list[int]]:
        return work_abandoned_recover(
            self.model,
            doing=self.doing,
            again=self.again,
            queue_name=self.queue,
            job_id=self.job_id,
            enqueue=self.queue_job,
        )
