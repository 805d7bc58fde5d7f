"""The render queue's worker (gestima.worker.RenderWorker): jobs run in the worker's own process, so one capped
render process serves drawing after drawing; a bad file still costs only its drawing, and RQ's job timeout
kills the render process and the next drawing gets a fresh one.

A real burst worker of the class, in this process (it sees the test database). A probe job,
`curation.rendering.render_process_pid`, reports the worker's render process between drawings: under a
worker that forks a work-horse per job it reports None (the horse's render process died with it).
"""

import os

import django_rq
import pytest

from curation import rendering
from curation.jobs import drawing_render_job, drawing_render_job_failed
from curation.models import Drawing
from curation.services.drawing_uploads import drawing_ingest
from curation.services.drawings import drawing_render_job_id
from tests.factories import make_drawing

RENDER_WORKER = "gestima.worker.RenderWorker"


@pytest.fixture
def render_queue():
    rendering.render_process_stop()  # the test process may have rendered before: start from none
    yield django_rq.get_queue("render")
    rendering.render_process_stop()


def _work(queue):
    worker = django_rq.get_worker("render", worker_class=RENDER_WORKER)
    worker.work(burst=True, with_scheduler=False)
    return worker


def _probe(queue):
    """A job that answers with the worker's render process id at its place in the queue."""
    return queue.enqueue(rendering.render_process_pid)


def _ingest(path):
    drawing, created = drawing_ingest(content=path.read_bytes(), original_name=path.name)
    assert created
    return drawing


@pytest.mark.django_db(transaction=True)  # the worker closes its connections at start, as in production
def test_one_render_process_serves_every_drawing_and_a_corrupt_pdf_fails_only_its_own(corpus, render_queue):
    first_sheet, second_sheet = sorted((corpus / "drawings").glob("*.pdf"))[:2]
    first = _ingest(first_sheet)
    after_first = _probe(render_queue)
    corrupt = _ingest(corpus / "bad" / "truncated_40_percent.pdf")
    second = _ingest(second_sheet)
    after_all = _probe(render_queue)

    _work(render_queue)

    for drawing in (first, corrupt, second):
        drawing.refresh_from_db()
    assert first.status == second.status == Drawing.Status.RENDERED
    assert first.pages.count() == first.page_count >= 1 and second.pages.count() == second.page_count >= 1
    assert corrupt.status == Drawing.Status.FAILED
    assert corrupt.error.startswith("damaged PDF: the file is cut off")
    pid = after_first.return_value()
    assert pid is not None and pid != os.getpid()
    # The same process rendered the second sheet after the corrupt one: forked once, reused.
    assert after_all.return_value() == pid
    assert rendering.render_process_pid() == pid


@pytest.mark.django_db(transaction=True)
def test_a_job_timeout_kills_the_render_process_and_the_next_drawing_gets_a_fresh_one(
    corpus, render_queue, settings, tmp_path, monkeypatch
):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the render folders, to see they go
    settings.RENDER_TIMEOUT_SECONDS = 120  # RQ's job timeout (2 s below) comes first
    warm = _ingest(sorted((corpus / "drawings").glob("*.pdf"))[0])
    before = _probe(render_queue)
    # A file that never gives a byte: the render process waits on it until the job timeout strikes.
    stuck = make_drawing(status=Drawing.Status.UPLOADED)
    os.unlink(stuck.file.path)
    os.mkfifo(stuck.file.path)
    render_queue.enqueue(
        drawing_render_job,
        stuck.pk,
        job_id=drawing_render_job_id(stuck.pk),
        job_timeout=2,
        on_failure=drawing_render_job_failed,
    )
    after_timeout = _probe(render_queue)
    later = _ingest(sorted((corpus / "drawings").glob("*.pdf"))[1])
    after_all = _probe(render_queue)

    _work(render_queue)

    for drawing in (warm, stuck, later):
        drawing.refresh_from_db()
    assert warm.status == later.status == Drawing.Status.RENDERED
    assert stuck.status == Drawing.Status.FAILED
    assert "JobTimeoutException" in stuck.error and "2 seconds" in stuck.error
    old = before.return_value()
    assert old is not None
    with pytest.raises(ProcessLookupError):
        os.kill(old, 0)  # killed and reaped, not left waiting on the file
    assert after_timeout.return_value() is None  # nothing holds a render process between the two
    fresh = after_all.return_value()
    assert fresh is not None and fresh != old
    assert not [name for name in os.listdir(tmp_path) if name.startswith("gestima-render-")]
