"""Estimates for a posted PDF as background work: refuse at once what cannot be answered, then render and
ask in a worker while the caller polls the estimate's status.

Rendering a 40-sheet PDF takes minutes: the API stores the PDF (drawing_ingest), records a queued Estimate
and answers 202; the job renders the drawing (or waits for the worker already rendering it) and asks the
model through `estimate_create`, which saves its answer into the same row. Refusals that need no rendering
(no active model and no usable fallback, a file that is not a PDF, a drawing that failed before) are
answered before anything is queued.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from curation.models import Drawing, Task
from finetune.models import Estimate
from finetune.services.estimates import EstimateError, EstimateFailed, estimate_create, estimate_model_choose
from gestima.leases import lease_kept
from gestima.queues import queue_ping
from gestima.work import ACTIVE, WorkKind, WorkStatus

logger = logging.getLogger(__name__)

ESTIMATE = WorkKind(
    model=Estimate,
    queue="default",  # render (up to RENDER_TIMEOUT_SECONDS) and one chat call: above the render queue's timeout
    job="finetune.jobs.estimate_request_job",
    failure_hook="finetune.jobs.estimate_request_job_failed",
    job_id_prefix="estimate",
    doing="rendering and estimating this PDF",
    again="Post the PDF again",
    stopped="The estimate stopped",
)
estimate_job_id = ESTIMATE.job_id
STEPS = 2  # render the PDF, ask the model
_WAIT_POLL_SECONDS = 1.0


class DrawingUnusable(EstimateError):
    """The PDF was stored before and failed to render: no estimate can be made of it."""

    def __init__(self, message: str, *, drawing: Drawing):
        super().__init__(message)
        self.drawing = drawing


def estimate_pdf_request(*, file, task: Task, user) -> tuple[Estimate, bool]:
    """Store the PDF and queue its render and estimate (after commit); returns (estimate, queued now).

    The same PDF for the same task and caller while its estimate is under way (a client retrying) returns that
    estimate: no second job. Raises PermissionDenied, EstimateError (refused now, nothing stored),
    DrawingRejected (not a PDF, too large), DrawingUnusable, QueueUnavailable (Redis away, nothing queued).
    """
    from curation.services.drawing_uploads import drawing_ingest

    if not user.has_perm("finetune.add_estimate"):
        raise PermissionDenied("You may not ask for estimates.")
    estimate_model_choose(task=task)  # refused now, before minutes of rendering; asked again when the job runs
    queue_ping(ESTIMATE.queue)
    drawing, _ = drawing_ingest(file=file, uploaded_by=user, enqueue=False)  # rendered by the estimate's job
    if drawing.status == Drawing.Status.FAILED:
        raise DrawingUnusable(f"The drawing could not be rendered: {drawing.error}", drawing=drawing)
    with transaction.atomic():
        Drawing.objects.select_for_update().filter(pk=drawing.pk).first()  # two posts at once: one estimate
        current = (
            Estimate.objects.filter(drawing=drawing, task=task, created_by=user, status__in=ACTIVE)
            .order_by("-pk")
            .first()
        )
        if current is not None:
            if ESTIMATE.is_active(current):
                return current, False
            return ESTIMATE.requeue(current), True  # its job was lost: queue it again
        estimate = Estimate.objects.create(
            task=task,
            drawing=drawing,
            created_by=user,
            status=WorkStatus.QUEUED,
            total=STEPS,
            stage="waiting for a worker",
        )
        ESTIMATE.queue_job(estimate.pk)
    return estimate, True


def _stage(estimate_id: int, *, done: int, stage: str) -> None:
    Estimate.objects.filter(pk=estimate_id, status=WorkStatus.RUNNING).update(done=done, stage=stage)


def _rendered(drawing: Drawing) -> Drawing:
    """The drawing rendered here, or by the worker already rendering it (waited for, up to the render limit)."""
    from curation.services.drawings import drawing_render

    if drawing.status == Drawing.Status.UPLOADED:
        drawing = drawing_render(drawing=drawing)
    deadline = time.monotonic() + settings.RENDER_TIMEOUT_SECONDS + settings.JOB_LEASE_SECONDS
    while drawing.status == Drawing.Status.RENDERING and time.monotonic() < deadline:
        time.sleep(_WAIT_POLL_SECONDS)
        drawing.refresh_from_db()
    return drawing


def estimate_request_run(*, estimate_id: int) -> Estimate | None:
    """The job's work: claim the row, render the drawing, ask the model; the outcome (or why not) on the row."""
    if not ESTIMATE.claim(estimate_id):
        return None  # done already, or another worker has it
    estimate = Estimate.objects.select_related("task", "drawing", "created_by").get(pk=estimate_id)
    try:
        with lease_kept(lambda: ESTIMATE.lease_renew(estimate_id)):
            _stage(estimate_id, done=0, stage="rendering the PDF")
            drawing = _rendered(estimate.drawing)
            if drawing.status != Drawing.Status.RENDERED:
                reason = drawing.error or f"it is still {drawing.get_status_display().lower()}: post it again later"
                ESTIMATE.fail(estimate_id, error=f"The drawing could not be rendered: {reason}")
                return Estimate.objects.get(pk=estimate_id)
            _stage(estimate_id, done=1, stage="asking the model")
            estimate_create(drawing=drawing, task=estimate.task, user=estimate.created_by, estimate_id=estimate_id)
    except EstimateFailed as exc:
        Estimate.objects.filter(pk=estimate_id).update(error_kind=exc.kind)
        ESTIMATE.fail(estimate_id, error=str(exc))
    except (EstimateError, PermissionDenied) as exc:
        ESTIMATE.fail(estimate_id, error=str(exc))
    except Exception as exc:
        logger.exception("estimate %s failed", estimate_id)
        ESTIMATE.fail(estimate_id, error=f"{ESTIMATE.stopped}: {type(exc).__name__}: {exc}")
        raise
    else:
        # estimate_create saved the answer into the row; the row is done, its steps complete, its attempts kept.
        Estimate.objects.filter(pk=estimate_id).update(
            status=WorkStatus.DONE, done=STEPS, total=STEPS, stage="", lease_until=None
        )
    return Estimate.objects.get(pk=estimate_id)


def estimates_abandoned_recover() -> dict[str, list[int]]:
    return ESTIMATE.recover()
