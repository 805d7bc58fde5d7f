"""A dataset version's export as a background job: request (claim, enqueue), run, failure, recovery.

The status field drives it: a request claims the row `queued`, the job claims it `running` under a lease
it renews, and a worker killed mid-export is taken back when the lease runs out (`gestima.recovery`).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from rq import Callback

from curation.models import DatasetVersion
from curation.services.exports import (
    FORMATS,
    ExportError,
    dataset_version_export_store,
    default_export_name,
    export_format_check,
    format_errors,
)
from gestima.leases import lease_kept, lease_until, worker_stopped_message
from gestima.progress import Progress
from gestima.queues import QueueUnavailable, enqueue_on_commit, job_forget, job_is_pending, queue_ping
from gestima.storage import exports_storage, storage_location, storage_partials_remove

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 1.0
EXPORT_QUEUE = "default"
EXPORT_JOB = "curation.jobs.dataset_version_export_job"
EXPORT_FAILED_HOOK = "curation.jobs.dataset_version_export_job_failed"


def export_job_id(version_id: int) -> str:
    return f"dataset-version-export-{version_id}"


EXPORT_BUSY = (DatasetVersion.ExportStatus.QUEUED, DatasetVersion.ExportStatus.RUNNING)


def export_progress(version: DatasetVersion) -> Progress:
    """The export's progress as the version's page, its live JSON and the dashboard show it: lines written of
    the version's lines (one per example)."""
    counts = version.counts or {}
    total = counts.get("total") or (counts.get("train", 0) + counts.get("validation", 0))
    if version.export_status == DatasetVersion.ExportStatus.DONE:
        percent = 100
    else:
        percent = min(100, 100 * version.export_progress // total) if total else 0
    return Progress(
        f"{version.get_export_status_display()}: {version.export_progress} / {total} lines ({percent}%)", percent
    )


def dataset_version_export_request(*, version: DatasetVersion, fmt: str = "openai") -> DatasetVersion:
    """Queue the export job (after commit). Raises ExportError when it cannot, QueueUnavailable when Redis is away."""
    export_format_check(fmt)
    errors = format_errors(version)
    if errors:
        raise ExportError(f"{version} has {len(errors)} format error(s): fix the examples and build a new version.")
    S = DatasetVersion.ExportStatus
    queue_ping(EXPORT_QUEUE)
    # A worker killed mid-export never reports back: its lease runs out (RQ may still call its job
    # `started` for minutes), and with no job left in Redis a `queued` status is stale too.
    free = Q(export_status__in=[S.NONE, S.DONE, S.FAILED]) | Q(
        export_status=S.RUNNING, export_lease_until__lt=timezone.now()
    )
    if not job_is_pending(queue_name=EXPORT_QUEUE, job_id=export_job_id(version.pk)):
        free |= Q(export_status__in=[S.QUEUED, S.RUNNING])
    was_running = DatasetVersion.objects.filter(pk=version.pk, export_status=S.RUNNING).exists()
    with transaction.atomic():
        claimed = DatasetVersion.objects.filter(Q(pk=version.pk) & free).update(
            export_status=S.QUEUED,
            export_progress=0,
            export_error="",
            export_format=fmt,
            export_attempts=0,
            export_lease_until=None,
        )
        if not claimed:
            raise ExportError(f"{version} is already being exported.")
        if was_running:
            _abandoned_export_clear(version)
        _export_enqueue(version.pk)
    version.refresh_from_db()
    return version


def dataset_version_export_run(*, version_id: int) -> DatasetVersion | None:
    """The job's work: claim queued → running (so two workers never export one version), export, record.

    The format is the one the request stored on the row (`export_format`), so the job needs only the id.
    """
    # The lease says the worker is alive; the attempt count bounds the retries after a killed worker.
    claimed = DatasetVersion.objects.filter(pk=version_id, export_status=DatasetVersion.ExportStatus.QUEUED).update(
        export_status=DatasetVersion.ExportStatus.RUNNING,
        export_progress=0,
        export_error="",
        export_lease_until=lease_until(),
        export_attempts=F("export_attempts") + 1,
    )
    if not claimed:
        return None  # done already, or another worker has it
    version = DatasetVersion.objects.select_related("dataset__task").get(pk=version_id)
    fmt = version.export_format or "openai"
    last = [0.0]

    def record(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS or done == total:
            last[0] = now
            DatasetVersion.objects.filter(pk=version_id).update(export_progress=done)

    def renew() -> int:
        return DatasetVersion.objects.filter(pk=version_id, export_status=DatasetVersion.ExportStatus.RUNNING).update(
            export_lease_until=lease_until()
        )

    try:
        with lease_kept(renew):
            storage = exports_storage()
            written = dataset_version_export_store(
                version=version, storage=storage, folder=default_export_name(version, fmt), fmt=fmt, progress=record
            )
    except Exception as exc:
        dataset_version_export_fail(version_id=version_id, error=str(exc))
        raise
    # export_dir says where the files are in words a person can follow: a local path or s3://bucket/key.
    DatasetVersion.objects.filter(pk=version_id).update(
        export_status=DatasetVersion.ExportStatus.DONE,
        export_dir=storage_location(storage, written.folder),
        manifest=written.manifest,
        exported_at=timezone.now(),
        export_error="",
    )
    version.refresh_from_db()
    return version


def dataset_version_export_fail(*, version_id: int, error: str) -> None:
    """Store why an export failed (also called by the job's on_failure hook, e.g. on a timeout)."""
    DatasetVersion.objects.filter(pk=version_id).exclude(export_status=DatasetVersion.ExportStatus.DONE).update(
        export_status=DatasetVersion.ExportStatus.FAILED, export_error=(error or "export failed")[:5000]
    )


def dataset_version_export_worker_lost(*, version_id: int) -> None:
    """RQ saw the export's worker die (the job's on_failure hook): end the lease, so the next recovery pass
    takes the version back. Not queued from here: RQ still records the dead job under its id after the
    hook returns, and would overwrite a new one."""
    DatasetVersion.objects.filter(pk=version_id, export_status=DatasetVersion.ExportStatus.RUNNING).update(
        export_lease_until=timezone.now() - timedelta(seconds=1)
    )


def _abandoned_export_clear(version: DatasetVersion) -> None:
    # The dead job is deleted so the retry can use its id; the dead process's `.partial` files (or unfinished
    # multipart uploads in a bucket) go.
    job_forget(queue_name=EXPORT_QUEUE, job_id=export_job_id(version.pk))
    storage = exports_storage()
    for fmt in FORMATS:
        storage_partials_remove(storage, default_export_name(version, fmt), depth=2)


def dataset_version_exports_abandoned_recover(*, version_ids=None) -> dict[str, list[int]]:
    """Take back exports left `running` by a worker that is gone (lease run out): queue them again, or fail
    them in words once JOB_MAX_ATTEMPTS runs were started. Returns {"queued": ids, "failed": ids}.

    Conditional UPDATEs: two recoveries at once never both take one version. The dead process's
    `.partial` files are removed.
    """
    S = DatasetVersion.ExportStatus
    now = timezone.now()
    rows = DatasetVersion.objects.filter(export_status=S.RUNNING).filter(
        Q(export_lease_until__lt=now) | Q(export_lease_until__isnull=True)
    )
    if version_ids is not None:
        rows = rows.filter(pk__in=list(version_ids))
    outcome = {"queued": [], "failed": []}
    for version in rows.select_related("dataset"):
        if version.export_lease_until is None and job_is_pending(
            queue_name=EXPORT_QUEUE, job_id=export_job_id(version.pk)
        ):
            continue  # running since before leases existed: left to RQ's own report (AbandonedJobError)
        taken = DatasetVersion.objects.filter(
            pk=version.pk, export_status=S.RUNNING, export_lease_until=version.export_lease_until
        )
        if version.export_attempts >= settings.JOB_MAX_ATTEMPTS:
            message = worker_stopped_message(
                doing="exporting this version", attempts=version.export_attempts, again="Export again"
            )
            if taken.update(export_status=S.FAILED, export_error=message, export_lease_until=None):
                logger.warning(
                    "export of version %s: worker stopped %s times, failed", version.pk, version.export_attempts
                )
                outcome["failed"].append(version.pk)
                _abandoned_export_clear(version)
            continue
        if taken.update(export_status=S.QUEUED, export_progress=0, export_lease_until=None):
            logger.warning("export of version %s: its worker stopped; queued again", version.pk)
            _abandoned_export_clear(version)
            outcome["queued"].append(version.pk)
            try:
                _export_enqueue(version.pk)
            except QueueUnavailable:
                logger.warning("Redis is away: the export of version %s stays queued", version.pk)
    return outcome


def _export_enqueue(version_id: int) -> None:
    # By dotted path: services never import jobs (the job module imports the services).
    enqueue_on_commit(
        EXPORT_QUEUE, EXPORT_JOB, version_id, job_id=export_job_id(version_id), on_failure=Callback(EXPORT_FAILED_HOOK)
    )
