"""Drawings: render into page images (queued, leased), render again, recover, reconcile, delete.

Uploads (dedup by sha256, type and size checks) are `curation.services.drawing_uploads`.

Rendering itself is the `curation.rendering` package (PyMuPDF, in a capped child process); this module owns the
rows, the files in storage and the queue.
"""

from __future__ import annotations

import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone
from rq import Callback

from curation import rendering
from curation.models import Drawing, DrawingPage
from curation.task_presets import DRAWING_TASK_SLUG
from gestima.leases import (
    lease_kept,
    lease_until,
    render_workdir_make,
    render_workdirs_remove,
    worker_stopped_message,
)
from gestima.progress import Progress
from gestima.queues import QueueUnavailable, enqueue_on_commit, job_forget, job_is_pending
from gestima.storage import storage_stream

logger = logging.getLogger(__name__)

RENDER_QUEUE = "render"
RENDER_JOB = "curation.jobs.drawing_render_job"
RENDER_FAILED_HOOK = "curation.jobs.drawing_render_job_failed"


def drawing_render_job_id(drawing_id: int) -> str:
    return f"render-drawing-{drawing_id}"


def drawing_render_enqueue(*, drawing: Drawing) -> None:
    """Queue the render after commit under a deterministic id; raises QueueUnavailable (row kept)."""
    # By dotted path: services never import jobs (the job module imports the services).
    enqueue_on_commit(
        RENDER_QUEUE,
        RENDER_JOB,
        drawing.pk,
        job_id=drawing_render_job_id(drawing.pk),
        on_failure=Callback(RENDER_FAILED_HOOK),
    )


# --- Rendering ----------------------------------------------------------------------------------


def _claim(drawing: Drawing) -> bool:
    # The status claim makes the job idempotent: a second run (or a second worker) finds no
    # `uploaded` row and returns without touching the pages.
    # The lease says the worker is alive; the attempt count bounds the retries after a killed worker.
    return (
        Drawing.objects.filter(pk=drawing.pk, status=Drawing.Status.UPLOADED).update(
            status=Drawing.Status.RENDERING,
            error="",
            updated_at=timezone.now(),
            lease_until=lease_until(),
            render_attempts=F("render_attempts") + 1,
            pages_done=0,
        )
        == 1
    )


def _lease_renew(drawing_id: int) -> int:
    return Drawing.objects.filter(pk=drawing_id, status=Drawing.Status.RENDERING).update(lease_until=lease_until())


def drawing_render(*, drawing: Drawing) -> Drawing:
    """Render a drawing that is `uploaded`: pages replaced in one transaction, status and error stored.

    Does nothing (returns the drawing as it is) when the row is not `uploaded`: already rendering
    elsewhere, rendered, or failed (use `drawing_render_again`). A drawing it claims never stays
    `rendering`: an unexpected error fails that drawing (logged with its traceback), so a batch goes on;
    an interruption (Ctrl-C) puts it back to `uploaded` for the next run.
    """
    if not _claim(drawing):
        drawing.refresh_from_db()
        return drawing
    try:
        with lease_kept(lambda: _lease_renew(drawing.pk)):
            drawing = _render_claimed(drawing)
    except Exception as exc:
        logger.exception("rendering drawing %s failed", drawing.pk)
        return drawing_render_fail(drawing=drawing, message=f"rendering stopped: {type(exc).__name__}: {exc}")
    except BaseException:
        Drawing.objects.filter(pk=drawing.pk, status=Drawing.Status.RENDERING).update(
            status=Drawing.Status.UPLOADED, updated_at=timezone.now()
        )
        raise
    if drawing.status == Drawing.Status.RENDERED and drawing.part_number:
        try:
            _after_render(drawing)
        except Exception:
            # The drawing did render; `build_examples` (or the Task action) can always do this later.
            logger.exception("ground truth / example build after rendering drawing %s failed", drawing.pk)
    return drawing


# Waiting for a render worker or rendering: the drawing's page polls, the dashboard lists it under work under way.
RENDER_ACTIVE = (Drawing.Status.UPLOADED, Drawing.Status.RENDERING)


def drawing_render_progress(drawing: Drawing) -> Progress:
    """The render's progress as the drawing's page, its live JSON and the dashboard show it."""
    if drawing.status == Drawing.Status.UPLOADED:
        return Progress("Queued: waiting for a render worker", 0)
    if drawing.status == Drawing.Status.RENDERED:
        pages = drawing.page_count or 0
        return Progress(f"Rendered: {pages} page{'s' if pages != 1 else ''}", 100)
    if drawing.status != Drawing.Status.RENDERING:
        return Progress(drawing.get_status_display(), 0)
    if not drawing.page_count:
        return Progress("Rendering: opening the PDF", 0)
    done = min(drawing.pages_done, drawing.page_count)
    percent = 100 * done // drawing.page_count
    return Progress(f"Rendering: {done} / {drawing.page_count} pages ({percent}%)", percent)


def _render_progress(drawing_id: int):
    """The render's `progress(done, total)`: the drawing's page counts, which its page shows live.

    One UPDATE a page (at most RENDER_MAX_PAGES + 1 a drawing). The total is the PDF's page count, stored as the
    render starts; the finished render stores the pages it kept. A count that cannot be written is only logged:
    the render itself goes on.
    """

    def record(done: int, total: int) -> None:
        try:
            Drawing.objects.filter(pk=drawing_id, status=Drawing.Status.RENDERING).update(
                page_count=total, pages_done=done
            )
        except DatabaseError:
            logger.warning("drawing %s: render progress %s / %s not recorded", drawing_id, done, total, exc_info=True)

    return record


def _render_claimed(drawing: Drawing) -> Drawing:
    if not drawing.file or not drawing.file.storage.exists(drawing.file.name):
        return drawing_render_fail(drawing=drawing, message="the PDF file is missing from storage: upload it again")
    workdir = render_workdir_make()
    try:
        source = _local_pdf_path(drawing, workdir)
        try:
            result = rendering.render_isolated(
                source,
                out_dir=workdir,
                limits=rendering.RenderLimits.from_settings(),
                stem=drawing.sha256[:16],
                progress=_render_progress(drawing.pk),
            )
        except rendering.RenderError as exc:
            return drawing_render_fail(drawing=drawing, message=exc.message)
        return _pages_replace(drawing=drawing, result=result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _after_render(drawing: Drawing) -> None:
    """Records may have arrived before the drawing: compute its ground truth with the material just read,
    and, where the part has one, put its example up for review without anyone having to ask."""
    from curation.models import Task
    from curation.services.examples import examples_build
    from curation.services.ground_truth import ground_truth_compute

    if ground_truth_compute(part_number=drawing.part_number) is None:
        return
    task = Task.objects.filter(slug=DRAWING_TASK_SLUG).first()
    if task is not None:
        examples_build(task=task, drawings=[drawing])


def _local_pdf_path(drawing: Drawing, workdir: str) -> str:
    try:
        return drawing.file.path
    except NotImplementedError:
        # Remote storage (S3...): the render child needs a local file, copied into the work dir as it streams.
        target = Path(workdir) / "source.pdf"
        with storage_stream(drawing.file.storage, drawing.file.name) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        return str(target)


class _TempFile(File):
    """A rendered image in the work dir; FileSystemStorage moves it instead of copying."""

    def temporary_file_path(self):
        return self.file.name


def _pages_replace(*, drawing: Drawing, result: rendering.RenderResult) -> Drawing:
    """Write the new page images, then swap the rows in one transaction; old files go after commit.

    Pages are updated in place by number so their ids (which examples reference) survive a re-render.
    """
    storage = DrawingPage._meta.get_field("image").storage
    upload_to = DrawingPage._meta.get_field("image")
    new_names = []
    try:
        for page in result.pages:
            with open(page.path, "rb") as handle:
                name = upload_to.generate_filename(None, Path(page.path).name)
                new_names.append(storage.save(name, _TempFile(handle, name=Path(page.path).name)))
        with transaction.atomic():
            locked = Drawing.objects.select_for_update().get(pk=drawing.pk)
            if locked.status != Drawing.Status.RENDERING:
                raise _Superseded()
            existing = {p.number: p for p in locked.pages.all()}
            old_names = [p.image.name for p in existing.values()]
            for page, name in zip(result.pages, new_names):
                row = existing.pop(page.number, None) or DrawingPage(drawing=locked, number=page.number)
                row.image.name = name
                row.width, row.height, row.format = page.width, page.height, page.format
                row.bytes, row.sha256, row.phash = page.bytes, page.sha256, page.phash
                row.save()
            DrawingPage.objects.filter(pk__in=[p.pk for p in existing.values()]).delete()
            # text_storable again here: whatever a render returns, the row can always be saved.
            warnings = result.warnings
            locked.page_count = result.page_count
            locked.has_text_layer = result.has_text_layer
            locked.repaired = result.repaired
            locked.warning_count = len(warnings)
            locked.warnings = rendering.text_storable("\n".join(warnings[:200]))
            locked.page_problems = rendering.text_storable("; ".join(result.page_problems))
            locked.material = rendering.text_storable(result.material)[:100]
            if result.part_number and _part_number_is_automatic(locked):
                locked.part_number = rendering.text_storable(result.part_number)[:100]
            locked.status = Drawing.Status.RENDERED
            locked.error = ""
            locked.rendered_at = timezone.now()
            locked.save()
            transaction.on_commit(lambda: _files_delete(storage, [n for n in old_names if n not in new_names]))
        return locked
    except _Superseded:
        _files_delete(storage, new_names)
        drawing.refresh_from_db()
        return drawing
    except BaseException:
        _files_delete(storage, new_names)
        raise


class _Superseded(Exception):
    pass


def _part_number_is_automatic(drawing: Drawing) -> bool:
    # A part number a person typed in wins over the title block; the file-name guess does not.
    return not drawing.part_number or drawing.part_number == rendering.part_number_from_filename(drawing.original_name)


def _files_delete(storage, names) -> None:
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            logger.warning("could not delete old page image %s", name)


def drawing_render_fail(*, drawing: Drawing, message: str) -> Drawing:
    """Store why a render failed; only a drawing that is `rendering` changes (a late crash report never
    overwrites a later success)."""
    Drawing.objects.filter(pk=drawing.pk, status=Drawing.Status.RENDERING).update(
        status=Drawing.Status.FAILED, error=rendering.text_storable(message)[:2000], updated_at=timezone.now()
    )
    drawing.refresh_from_db()
    return drawing


def drawing_render_again(*, drawings) -> int:
    """Put rendered or failed drawings back to `uploaded` and queue them; returns how many.

    The status change is committed first, so if Redis is away (QueueUnavailable) nothing is lost:
    the reconciler queues them when it is back.
    """
    ids = list(
        Drawing.objects.filter(
            pk__in=[d.pk for d in drawings], status__in=[Drawing.Status.RENDERED, Drawing.Status.FAILED]
        ).values_list("pk", flat=True)
    )
    Drawing.objects.filter(pk__in=ids).update(
        status=Drawing.Status.UPLOADED, error="", updated_at=timezone.now(), render_attempts=0
    )
    for drawing in Drawing.objects.filter(pk__in=ids):
        drawing_render_enqueue(drawing=drawing)
    return len(ids)


def drawing_render_worker_lost(*, drawing_id: int) -> None:
    """RQ saw the job's worker die (the render job's on_failure hook): end the drawing's lease, so the next
    recovery pass takes it back. Not queued from here: RQ still records the dead job under its id after
    the hook returns, and would overwrite a new one."""
    Drawing.objects.filter(pk=drawing_id, status=Drawing.Status.RENDERING).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )


def drawings_abandoned_recover(*, drawing_ids=None) -> dict[str, list[int]]:
    """Take back drawings left `rendering` by a worker that is gone: queue them again, or fail them in words
    once JOB_MAX_ATTEMPTS renders were started. Returns {"queued": ids, "failed": ids}.

    A drawing is taken back when its lease ran out (the job renews it while it runs). Conditional UPDATEs:
    two recoveries at once never both take one drawing. Render folders of dead processes are removed.
    """
    now = timezone.now()
    rows = Drawing.objects.filter(status=Drawing.Status.RENDERING)
    if drawing_ids is not None:
        rows = rows.filter(pk__in=list(drawing_ids))
    # Rows from before leases existed have none: their last change stands in for it.
    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    rows = rows.filter(Q(lease_until__lt=now) | Q(lease_until__isnull=True, updated_at__lt=stale))
    outcome = {"queued": [], "failed": []}
    for drawing_id, attempts, lease in rows.values_list("pk", "render_attempts", "lease_until"):
        taken = Drawing.objects.filter(pk=drawing_id, status=Drawing.Status.RENDERING, lease_until=lease)
        if attempts >= settings.JOB_MAX_ATTEMPTS:
            message = worker_stopped_message(doing="rendering this drawing", attempts=attempts, again="Render again")
            if taken.update(status=Drawing.Status.FAILED, error=message, lease_until=None, updated_at=timezone.now()):
                logger.warning("drawing %s: worker stopped %s times, failed", drawing_id, attempts)
                outcome["failed"].append(drawing_id)
            continue
        if taken.update(status=Drawing.Status.UPLOADED, lease_until=None, updated_at=timezone.now()):
            logger.warning("drawing %s: its worker stopped while rendering; queued again", drawing_id)
            job_forget(queue_name=RENDER_QUEUE, job_id=drawing_render_job_id(drawing_id))
            outcome["queued"].append(drawing_id)
    render_workdirs_remove()
    try:
        for drawing in Drawing.objects.filter(pk__in=outcome["queued"], status=Drawing.Status.UPLOADED):
            drawing_render_enqueue(drawing=drawing)
    except QueueUnavailable:
        logger.warning("Redis is away: drawings %s stay uploaded for the reconciler", outcome["queued"])
    return outcome


def drawings_reconcile() -> int:
    """Take back drawings whose worker died (see `drawings_abandoned_recover`) and queue every drawing left
    `uploaded`; returns how many were queued. Deterministic job ids: a drawing already queued is not
    queued twice."""
    drawings_abandoned_recover()
    queued = 0
    for drawing in Drawing.objects.filter(status=Drawing.Status.UPLOADED).order_by("pk"):
        if job_is_pending(queue_name=RENDER_QUEUE, job_id=drawing_render_job_id(drawing.pk)):
            continue
        drawing_render_enqueue(drawing=drawing)
        queued += 1
    return queued


def drawings_delete(*, drawings) -> int:
    """Delete drawings with their pages, and their PDF and image files once the delete has committed.

    Examples keep their rows (drawing set to null by the model); their page references then point nowhere,
    which the example checks report.
    """
    ids = [d.pk for d in drawings]
    storage = Drawing._meta.get_field("file").storage
    names = list(Drawing.objects.filter(pk__in=ids).values_list("file", flat=True))
    names += list(DrawingPage.objects.filter(drawing_id__in=ids).values_list("image", flat=True))
    with transaction.atomic():
        count, _ = Drawing.objects.filter(pk__in=ids).delete()
        transaction.on_commit(lambda: _files_delete(storage, [n for n in names if n]))
    return len(ids) if count else 0
