"""Killed workers: a real `manage.py rqworker` is SIGKILLed (with its work-horse and render process) while
a job blocks, and the row is taken back within the lease, retried, then failed in words.

The worker is another process, so these tests use an SQLite file both processes open (`shared_db` in
tests/gestima/conftest.py; the worker helpers are tests/workers.py): the session's in-memory test database is
invisible to a subprocess. A job "blocks" on a named pipe standing in for a file: opening a FIFO for reading
waits for a writer that never comes.
"""

import os
import time
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from curation.models import Dataset, DatasetVersion, Drawing, Example
from curation.services.datasets import dataset_build
from curation.services.drawings import drawing_render_enqueue, drawing_render_job_id
from curation.services.export_queue import dataset_version_export_request, export_job_id
from curation.services.exports import ExportError, default_export_dir
from gestima.recovery import abandoned_jobs_recover
from tests.factories import make_drawing, make_example, make_task, technology_target
from tests.workers import LEASE, STEP_DEADLINE, kill, start_worker, wait_for, wait_lease_out

RENDER_WORDS = (
    "The worker stopped while rendering this drawing (killed or out of memory) 3 times; "
    "it was not retried again. Render again to retry."
)
EXPORT_WORDS = (
    "The worker stopped while exporting this version (killed or out of memory) 3 times; "
    "it was not retried again. Export again to retry."
)


def _render_folders(db) -> list[str]:
    return [name for name in os.listdir(db["tmp"]) if name.startswith("gestima-render-")]


def _blocking_drawing() -> Drawing:
    drawing = make_drawing(status=Drawing.Status.UPLOADED)
    os.unlink(drawing.file.path)
    os.mkfifo(drawing.file.path)
    return drawing


def _render_started(db, drawing, attempts):
    drawing.refresh_from_db()
    return (
        drawing.status == Drawing.Status.RENDERING and drawing.render_attempts == attempts and bool(_render_folders(db))
    )


# The render queue's own worker runs jobs in its process (no work-horse): killed, it leaves the same row behind.
@pytest.mark.parametrize("worker_class", [None, "gestima.worker.RenderWorker"], ids=["work-horse", "render-worker"])
def test_a_render_killed_three_times_is_retried_then_failed_in_words(shared_db, worker_class):
    db = shared_db
    drawing = _blocking_drawing()
    drawing_render_enqueue(drawing=drawing)
    lease_of = lambda: Drawing.objects.values_list("lease_until", flat=True).get(pk=drawing.pk)  # noqa: E731

    worker = start_worker(db, "render", worker_class=worker_class)
    wait_for("the first render to start", lambda: _render_started(db, drawing, 1), db, worker)
    # Alive and blocked for longer than a lease: the heartbeat keeps it, the recovery leaves it alone.
    time.sleep(2 * LEASE)
    assert abandoned_jobs_recover()["drawings"] == {"queued": [], "failed": []}
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERING and drawing.lease_until > timezone.now()

    kill(worker)
    killed_at = time.monotonic()
    wait_lease_out(db, lease_of)
    # The periodic recovery (what each worker runs every JOB_RECOVER_INTERVAL_SECONDS).
    assert abandoned_jobs_recover()["drawings"] == {"queued": [drawing.pk], "failed": []}
    assert time.monotonic() - killed_at < 60
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.UPLOADED and drawing.error == ""
    job = django_rq.get_queue("render").fetch_job(drawing_render_job_id(drawing.pk))
    assert job is not None and job.get_status() == "queued"  # the dead `started` job no longer blocks it
    assert _render_folders(db) == []  # the killed render's temporary folder is gone

    worker = start_worker(db, "render", worker_class=worker_class)
    wait_for("the second render to start", lambda: _render_started(db, drawing, 2), db, worker)
    kill(worker)
    wait_lease_out(db, lease_of)

    # A worker starting takes the drawing back itself and renders it (third attempt).
    worker = start_worker(db, "render", worker_class=worker_class)
    wait_for("the third render to start", lambda: _render_started(db, drawing, 3), db, worker)
    kill(worker)
    wait_lease_out(db, lease_of)

    worker = start_worker(db, "render", burst=True, worker_class=worker_class)
    worker.wait(timeout=STEP_DEADLINE)
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.FAILED
    assert drawing.error == RENDER_WORDS
    assert _render_folders(db) == []
    assert django_rq.get_queue("render").count == 0


def test_a_work_horse_killed_alone_is_retried_by_its_own_worker(shared_db):
    """The out-of-memory killer takes the largest process, the work-horse: the worker lives on, RQ calls no
    failure hook, and the worker's own recovery (every JOB_RECOVER_INTERVAL_SECONDS) queues it again."""
    db = shared_db
    drawing = _blocking_drawing()
    drawing_render_enqueue(drawing=drawing)
    worker = start_worker(db, "render")
    try:
        wait_for("the first render to start", lambda: _render_started(db, drawing, 1), db, worker)
        kill(worker, horse_only=True)
        killed_at = time.monotonic()
        # The lease (2 s here, 30 s by default) runs out, the worker's recovery queues it, the worker renders.
        # Within the bound of a minute, with room for a loaded machine (it takes about 5 s when idle).
        wait_for("the second render to start", lambda: _render_started(db, drawing, 2), db, worker, deadline=55)
        assert time.monotonic() - killed_at < 60
        # The first render's folder goes (once older than a lease); the second's stays while it renders.
        wait_for("the killed render's folder to go", lambda: len(_render_folders(db)) == 1, db, worker, deadline=10)
    finally:
        kill(worker)


def _blocking_version(n=3):
    task = make_task()
    examples = [
        make_example(
            task=task,
            drawing=make_drawing(),
            status=Example.Status.APPROVED,
            target=technology_target(f"P-{i}", minutes=3 + i),
        )
        for i in range(n)
    ]
    dataset = Dataset.objects.create(name="killed-export", task=task, validation_fraction=0.2)
    version = dataset_build(dataset=dataset)
    for example in examples:
        for page in example.drawing.pages.all():
            os.unlink(page.image.path)
            os.mkfifo(page.image.path)
    return version


def _partials(version) -> list[str]:
    out_dir = default_export_dir(version, "openai")
    return [p.name for p in out_dir.rglob("*.partial")] if out_dir.exists() else []


def _export_started(version, attempts):
    version.refresh_from_db()
    return (
        version.export_status == DatasetVersion.ExportStatus.RUNNING
        and version.export_attempts == attempts
        and bool(_partials(version))
    )


def test_an_export_killed_three_times_is_retried_then_failed_in_words(shared_db):
    db = shared_db
    version = _blocking_version()
    dataset_version_export_request(version=version)
    lease_of = lambda: DatasetVersion.objects.values_list("export_lease_until", flat=True).get(pk=version.pk)  # noqa: E731

    worker = start_worker(db, "default")
    wait_for("the first export to start", lambda: _export_started(version, 1), db, worker)
    kill(worker)
    wait_lease_out(db, lease_of)
    assert abandoned_jobs_recover()["exports"] == {"queued": [version.pk], "failed": []}
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.QUEUED
    assert _partials(version) == []  # the killed export's `.partial` files are gone
    job = django_rq.get_queue("default").fetch_job(export_job_id(version.pk))
    assert job is not None and job.get_status() == "queued"

    worker = start_worker(db, "default")
    wait_for("the second export to start", lambda: _export_started(version, 2), db, worker)
    kill(worker)
    wait_lease_out(db, lease_of)

    worker = start_worker(db, "default")  # takes it back at start, and runs it (third attempt)
    wait_for("the third export to start", lambda: _export_started(version, 3), db, worker)
    kill(worker)
    wait_lease_out(db, lease_of)

    worker = start_worker(db, "default", burst=True)
    worker.wait(timeout=STEP_DEADLINE)
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.FAILED
    assert version.export_error == EXPORT_WORDS
    assert _partials(version) == []


def test_an_export_killed_midway_can_be_requested_again_once_its_lease_ran_out(shared_db):
    db = shared_db
    version = _blocking_version()
    dataset_version_export_request(version=version)
    worker = start_worker(db, "default")
    wait_for("the export to start", lambda: _export_started(version, 1), db, worker)
    kill(worker)
    # RQ still calls the dead job `started`; while the lease runs the export counts as live. (The lease is
    # set here: on a busy machine the kill itself may take longer than this test's short lease.)
    DatasetVersion.objects.filter(pk=version.pk).update(export_lease_until=timezone.now() + timedelta(seconds=LEASE))
    with pytest.raises(ExportError, match="already being exported"):
        dataset_version_export_request(version=version)
    wait_lease_out(db, lambda: DatasetVersion.objects.values_list("export_lease_until", flat=True).get(pk=version.pk))
    version = dataset_version_export_request(version=version, fmt="open_weights")
    assert version.export_status == DatasetVersion.ExportStatus.QUEUED
    assert version.export_format == "open_weights" and version.export_attempts == 0
    assert _partials(version) == []
    job = django_rq.get_queue("default").fetch_job(export_job_id(version.pk))
    # The job takes the id only; the format it exports in is the one the request stored (export_format).
    assert job is not None and job.get_status() == "queued" and list(job.args) == [version.pk]


# --- RQ's own report of an abandoned job, minutes later (in-process) ------------------------------


@pytest.mark.django_db
def test_rq_reporting_an_abandoned_render_hands_it_to_the_retry_not_to_a_failure(django_capture_on_commit_callbacks):
    from types import SimpleNamespace

    from rq.exceptions import AbandonedJobError

    from curation.jobs import drawing_render_job_failed

    drawing = make_drawing(
        status=Drawing.Status.RENDERING, render_attempts=1, lease_until=timezone.now() + timedelta(seconds=30)
    )
    drawing_render_job_failed(SimpleNamespace(args=[drawing.pk]), None, AbandonedJobError, AbandonedJobError(), None)
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.RENDERING and drawing.error == ""  # no "AbandonedJobError:" text
    with django_capture_on_commit_callbacks(execute=True):
        assert abandoned_jobs_recover()["drawings"] == {"queued": [drawing.pk], "failed": []}
    drawing.refresh_from_db()
    assert drawing.status == Drawing.Status.UPLOADED
    assert django_rq.get_queue("render").fetch_job(drawing_render_job_id(drawing.pk)) is not None


@pytest.mark.django_db
def test_rq_reporting_an_abandoned_export_after_the_last_attempt_fails_it_in_words(settings):
    from types import SimpleNamespace

    from rq.exceptions import AbandonedJobError

    from curation.jobs import dataset_version_export_job_failed
    from tests.factories import make_dataset_version

    settings.JOB_MAX_ATTEMPTS = 3
    version = make_dataset_version()
    DatasetVersion.objects.filter(pk=version.pk).update(
        export_status=DatasetVersion.ExportStatus.RUNNING,
        export_attempts=3,
        export_format="openai",
        export_lease_until=timezone.now() + timedelta(seconds=30),
    )
    dataset_version_export_job_failed(
        SimpleNamespace(args=[version.pk]), None, AbandonedJobError, AbandonedJobError(), None
    )
    assert abandoned_jobs_recover()["exports"] == {"queued": [], "failed": [version.pk]}
    version.refresh_from_db()
    assert version.export_status == DatasetVersion.ExportStatus.FAILED and version.export_error == EXPORT_WORDS
