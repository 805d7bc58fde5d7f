"""RQ entry points of the data side: thin wrappers that load rows by id and call services.

Services enqueue these by dotted path ("curation.jobs.<name>") and never import this module.
"""

# What RQ reports, minutes later, for a job whose worker was killed: the row's lease recovery (retry, or
# fail in words) handles it, not the job's own failure text. (A work-horse killed alone calls no hook at
# all in RQ 3: its lease runs out and the same recovery takes the row back.)
from gestima.work import WORKER_STOPPED as _WORKER_STOPPED


# --- drawings (render queue) ------------------------------------------------------------------


def drawing_render_job(drawing_id: int) -> str | None:
    """Render one drawing; a re-run finds the row no longer `uploaded` and returns."""
    from curation.models import Drawing
    from curation.services.drawings import drawing_render

    drawing = Drawing.objects.filter(pk=drawing_id).first()
    if drawing is None:
        return None
    return drawing_render(drawing=drawing).status


def drawing_render_job_failed(job, connection, exc_type, exc_value, tb):
    """on_failure hook: a crash or an RQ timeout is stored on the drawing instead of leaving it `rendering`."""
    from curation.models import Drawing
    from curation.services.drawings import drawing_render_fail, drawing_render_worker_lost

    if exc_type.__name__ in _WORKER_STOPPED:
        drawing_render_worker_lost(drawing_id=job.args[0])
        return
    drawing = Drawing.objects.filter(pk=job.args[0]).first()
    if drawing is not None:
        drawing_render_fail(drawing=drawing, message=f"rendering stopped: {exc_type.__name__}: {exc_value}")


def drawings_reconcile() -> int:
    """Periodic (gestima.periodic) and at worker start: queue drawings left waiting."""
    from curation.services.drawings import drawings_reconcile as reconcile

    return reconcile()


# --- dataset version export (default queue) ---------------------------------------------------


def dataset_version_export_job(version_id: int):
    """Export a dataset version (in the format its request stored); a re-run finds it claimed or done and returns."""
    from curation.services.export_queue import dataset_version_export_run

    version = dataset_version_export_run(version_id=version_id)
    return version.export_dir if version else None


def dataset_version_export_job_failed(job, connection, exc_type, exc_value, tb):
    """on_failure hook: the error goes on the version (covers timeouts, where the job's own except never runs)."""
    from curation.services.export_queue import dataset_version_export_fail, dataset_version_export_worker_lost

    if exc_type.__name__ in _WORKER_STOPPED:
        dataset_version_export_worker_lost(version_id=job.args[0])
        return
    dataset_version_export_fail(version_id=job.args[0], error=f"{exc_type.__name__}: {exc_value}")


# --- dataset build and production import (default queue) --------------------------------------


def dataset_build_job(build_id: int):
    """Build a dataset version; a re-run finds the build claimed or done and returns."""
    from curation.services.dataset_builds import dataset_build_run

    build = dataset_build_run(build_id=build_id)
    return build.status if build else None


def dataset_build_job_failed(job, connection, exc_type, exc_value, tb):
    """on_failure hook: a crash or an RQ timeout is stored on the build instead of leaving it `running`."""
    from curation.services.dataset_builds import BUILD

    BUILD.job_failed(job.args[0], exc_type=exc_type, exc_value=exc_value)


def production_import_job(import_id: int):
    """Import a stored production-times CSV; a re-run finds the import claimed or done and returns."""
    from curation.services.production_imports import production_import_run

    row = production_import_run(import_id=import_id)
    return row.status if row else None


def production_import_job_failed(job, connection, exc_type, exc_value, tb):
    """on_failure hook: a crash or an RQ timeout is stored on the import instead of leaving it `running`."""
    from curation.services.production_imports import IMPORT

    IMPORT.job_failed(job.args[0], exc_type=exc_type, exc_value=exc_value)
