"""Production-times CSV imports as background work: the upload is stored, a worker imports it with progress.

The file goes to storage (not a temp path of the web host) so a worker on any machine can read it. The
outcome stays on the ProductionImport row: counts, and every bad line by number and reason (good lines are
kept, as the import always does); the stored file is deleted once the import has finished. The same file sent
again while its import is under way (a second click, even at the same instant) returns that import: one job
per file at a time, held by a database constraint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import uuid

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from curation.models import ProductionImport
from curation.services.production import ProductionCsvInvalid, production_records_import
from gestima.leases import lease_kept
from gestima.queues import queue_ping
from gestima.work import ACTIVE, FINISHED, WorkKind, WorkStatus

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


def production_import_request(*, file, user=None, queue: bool = True) -> tuple[ProductionImport, bool]:
    """Store the uploaded CSV and queue its import (after commit); returns (import, queued now).

    The same bytes already queued or running (a second click, a re-sent form, a script run twice) return that
    import (False), even when both arrive at the same instant: the database's one-active-import-per-file
    constraint lets one insert through and the other answers with it. With `queue=False` (a command's --sync)
    no job is sent and Redis is not asked: the caller runs the import itself. Raises QueueUnavailable when
    Redis does not answer (nothing stored).
    """
    if queue:
        queue_ping(IMPORT.queue)
    data = file.read()
    data = data.encode() if isinstance(data, str) else data
    sha256 = hashlib.sha256(data).hexdigest()
    name = (getattr(file, "name", "") or "production.csv").rsplit("/", 1)[-1][:255]
    for _ in range(3):  # a rival's import may finish between its insert and our read: look again
        current = ProductionImport.objects.filter(sha256=sha256, status__in=ACTIVE).first()
        if current is not None:
            if not queue or IMPORT.is_active(current):
                return current, False
            return IMPORT.requeue(current), True  # its job was lost: queue it again
        row = ProductionImport(
            source_name=name,
            size=len(data),
            sha256=sha256,
            stage="waiting for a worker",
            requested_by=user if getattr(user, "pk", None) else None,
        )
        # A name of its own: two requests storing the same bytes at once never share (or delete) one file.
        row.file.save(f"{sha256[:16]}-{uuid.uuid4().hex[:8]}.csv", ContentFile(data), save=False)
        try:
            with transaction.atomic():
                row.save()
                if queue:
                    IMPORT.queue_job(row.pk)
        except IntegrityError:  # the same file was queued a moment ago by another request: that import answers
            row.file.storage.delete(row.file.name)
            continue
        return row, True
    raise RuntimeError(f"production import of {name}: the same file kept being queued and finished at once")


def production_import_queued_text(row: ProductionImport, *, queued: bool) -> str:
    """What the upload page and the command say after a request."""
    return f"import #{row.pk} queued" if queued else f"this file is already being imported (import #{row.pk})"


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
                # A retry (its worker killed) may find the records stored by the attempt before, unchanged, with
                # the ground truth of some parts not yet computed: every part of the file is refreshed then.
                report = production_records_import(
                    file=handle, source_name=row.source_name, progress=progress, refresh_every_part=row.attempts > 1
                )
    except ProductionCsvInvalid as exc:
        IMPORT.fail(import_id, error=str(exc))
        production_import_file_delete(import_id=import_id)
        return ProductionImport.objects.get(pk=import_id)
    except Exception as exc:
        logger.exception("production import %s failed", import_id)
        IMPORT.fail(import_id, error=f"{IMPORT.stopped}: {type(exc).__name__}: {exc}")
        production_import_file_delete(import_id=import_id)
        raise
    ProductionImport.objects.filter(pk=import_id, status=WorkStatus.RUNNING).update(
        status=WorkStatus.DONE,
        report=dataclasses.asdict(report),
        summary=_summary(report, attempts=row.attempts),
        stage="",
        done=1,
        total=1,
        finished_at=timezone.now(),
        lease_until=None,
    )
    production_import_file_delete(import_id=import_id)
    return ProductionImport.objects.get(pk=import_id)


def _summary(report, *, attempts: int) -> str:
    """The report's one line; a retried import says why its records count as unchanged."""
    if attempts <= 1:
        return report.summary()
    return (
        f"{report.summary()} (attempt {attempts}: the worker stopped during an earlier attempt, whose stored "
        "records count as unchanged here; the ground truth of every part in the file was recomputed)"
    )


def production_import_file_delete(*, import_id: int) -> bool:
    """Delete a finished import's stored CSV (its counts and bad lines are on the row; its name, size and hash too).

    Only a finished row's file: a queued or running import still needs it. The row is cleared after the file is
    gone, so a process killed in between leaves a row the sweep finds again.
    """
    row = ProductionImport.objects.filter(pk=import_id, status__in=FINISHED).exclude(file="").first()
    if row is None:
        return False
    row.file.storage.delete(row.file.name)
    ProductionImport.objects.filter(pk=import_id).update(file="")
    return True


def production_import_files_sweep() -> dict[str, list[int]]:
    """The recovery's pass: delete the files finished imports left behind (a worker killed after finishing, an
    import failed by its RQ timeout hook)."""
    finished = ProductionImport.objects.filter(status__in=FINISHED).exclude(file="").values_list("pk", flat=True)
    return {"removed": [pk for pk in finished if production_import_file_delete(import_id=pk)]}


def production_imports_abandoned_recover() -> dict[str, list[int]]:
    return IMPORT.recover()
