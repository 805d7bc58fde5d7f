"""Production-times CSV imports as background work: the upload is stored, a worker imports it with progress.

The file goes to storage (not a temp path of the web host) so a worker on any machine can read it. The
outcome stays on the ProductionImport row: counts, and every bad line by number and reason (good lines are
kept, as the import always does). The same file sent again while its import is under way (a second click)
returns that import: one job per file at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from curation.models import ProductionImport
from curation.services.production import ProductionCsvInvalid, production_records_import
from gestima.leases import lease_kept
from gestima.queues import queue_ping
from gestima.work import ACTIVE, WorkKind, WorkStatus

logger = logging.getLogger(__name__)

IMPORT = WorkKind(
    model=ProductionImport,
    queue="default",
    job="curation.jobs.production_import_job",
    failure_hook="curation.jobs.production_import_job_failed",
    job_id_prefix="production-import",
    doing="importing this file",
    again="Upload the file again",
    stopped="The import stopped",
)
production_import_job_id = IMPORT.job_id
# Reading, storing and recomputing ground truth: the bar is split between the stages in this order.
_STAGES = ("reading lines", "updating ground truth")


def production_import_request(*, file, user=None) -> tuple[ProductionImport, bool]:
    """Store the uploaded CSV and queue its import (after commit); returns (import, queued now).

    Raises QueueUnavailable when Redis does not answer (nothing stored).
    """
    queue_ping(IMPORT.queue)
    data = file.read()
    data = data.encode() if isinstance(data, str) else data
    sha256 = hashlib.sha256(data).hexdigest()
    name = (getattr(file, "name", "") or "production.csv").rsplit("/", 1)[-1][:255]
    with transaction.atomic():
        # The same bytes under way already (a second click, a re-sent form): that import answers.
        current = ProductionImport.objects.filter(sha256=sha256, status__in=ACTIVE).order_by("pk").first()
        if current is not None:
            if IMPORT.is_active(current):
                return current, False
            return IMPORT.requeue(current), True  # its job was lost: queue it again
        row = ProductionImport(
            source_name=name,
            sha256=sha256,
            stage="waiting for a worker",
            requested_by=user if getattr(user, "pk", None) else None,
        )
        row.file.save(f"{sha256[:16]}.csv", ContentFile(data), save=False)
        row.save()
        IMPORT.queue_job(row.pk)
    return row, True


def production_import_run(*, import_id: int) -> ProductionImport | None:
    """The job's work: claim the row, read the stored file, import with progress, record the outcome."""
    if not IMPORT.claim(import_id):
        return None  # done already, or another worker has it
    row = ProductionImport.objects.get(pk=import_id)
    record = IMPORT.progress(import_id)

    def progress(stage: str, done: int, total: int) -> None:
        index = _STAGES.index(stage) if stage in _STAGES else 0
        if index != getattr(progress, "stage", None):
            progress.stage = index
            ProductionImport.objects.filter(pk=import_id).update(stage=stage)
        # Reading is the first half of the bar, ground truth the second.
        record(index * total + done, 2 * total)

    try:
        with lease_kept(lambda: IMPORT.lease_renew(import_id)):
            with row.file.open("rb") as handle:
                report = production_records_import(file=handle, source_name=row.source_name, progress=progress)
    except ProductionCsvInvalid as exc:
        IMPORT.fail(import_id, error=str(exc))
        return ProductionImport.objects.get(pk=import_id)
    except Exception as exc:
        logger.exception("production import %s failed", import_id)
        IMPORT.fail(import_id, error=f"{IMPORT.stopped}: {type(exc).__name__}: {exc}")
        raise
    ProductionImport.objects.filter(pk=import_id, status=WorkStatus.RUNNING).update(
        status=WorkStatus.DONE,
        report=dataclasses.asdict(report),
        summary=report.summary(),
        stage="",
        done=1,
        total=1,
        finished_at=timezone.now(),
        lease_until=None,
    )
    return ProductionImport.objects.get(pk=import_id)


def production_imports_abandoned_recover() -> dict[str, list[int]]:
    return IMPORT.recover()
