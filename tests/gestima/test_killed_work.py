"""Killed work rows: a real `manage.py rqworker` is SIGKILLed mid-way through a dataset build, a production CSV
import and a PDF estimate (gestima/work.py rows), then a fresh worker takes the row back at its start.

What a person would notice is checked: the row ends done with its outcome present once (one dataset version,
each production record once and every part's ground truth, one answer from the model beyond the call that was
in flight), or, killed on every attempt, failed in words; no `.partial` file and no row left `running`.

The worker is another process: the test's database is one it sees (`worker_db`, tests/gestima/conftest.py).
Where a job waits is made certain without sleeping: a page image that is a named pipe (opening it waits for a
writer), a chat call the local OpenAI stand-in holds until the test lets it go, or a file of many parts whose
ground-truth pass lasts seconds, watched through the row's own progress.
"""

import json
import os
import threading
from pathlib import Path

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from curation.models import Dataset, DatasetBuild, DatasetVersion, Drawing, Example, GroundTruth, ProductionImport
from curation.models import ProductionRecord
from curation.services.dataset_builds import dataset_build_request
from curation.services.production_imports import production_import_request
from finetune.models import Estimate
from finetune.services.estimate_queue import estimate_pdf_request
from finetune.services.promotion import model_version_promote
from gestima.work import WorkStatus
from tests.factories import make_drawing, make_example, make_task, make_user, technology_target
from tests.finetune.evalkit import MODEL, make_done_eval_run, make_plan_dataset_version
from tests.openai_standin import StandIn
from tests.openai_standin.chat import install_chat, part_number
from tests.workers import STEP_DEADLINE, kill, start_worker, wait_for

BUILD_WORDS = (
    "The worker stopped while building this dataset (killed or out of memory) 3 times; "
    "it was not retried again. Build the dataset again to retry."
)


def _row(model, pk):
    return model.objects.get(pk=pk)


def _running(model, pk, *, attempts: int) -> bool:
    row = _row(model, pk)
    return row.status == WorkStatus.RUNNING and row.attempts == attempts


def _lease_out(db, model, pk) -> None:
    """The killed job's lease has run out (the worker's heartbeat died with it): a recovery may take the row."""
    wait_for(
        "the killed job's lease to run out",
        lambda: (_row(model, pk).lease_until or timezone.now()) < timezone.now(),
        db,
    )


def _fresh_worker_runs(db, queue="default") -> None:
    """A burst worker: its recovery at start queues the abandoned row again, then it runs the queue dry."""
    worker = start_worker(db, queue, burst=True)
    wait_for("the fresh worker to finish", lambda: worker.poll() is not None, db, deadline=STEP_DEADLINE)
    assert worker.returncode == 0, db["log"].read_text(errors="replace")[-3000:]


def _nothing_left_behind(settings, db) -> None:
    media = Path(settings.MEDIA_ROOT)
    assert [p.name for p in media.rglob("*.partial")] == [], "a half-written file was left in storage"
    assert [p for p in os.listdir(db["tmp"]) if p.startswith("gestima-render-")] == []
    assert not DatasetBuild.objects.filter(status=WorkStatus.RUNNING).exists()
    assert not ProductionImport.objects.filter(status=WorkStatus.RUNNING).exists()
    assert not Estimate.objects.filter(status=WorkStatus.RUNNING).exists()
    assert not Drawing.objects.filter(status=Drawing.Status.RENDERING).exists()
    assert django_rq.get_queue("default").count == 0


# --- dataset builds ---------------------------------------------------------------------------------------


def _dataset_with_blocking_pages(n=3):
    """A dataset of n approved examples whose page images are named pipes; returns (dataset, restore)."""
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
    dataset = Dataset.objects.create(name="killed-build", task=task, validation_fraction=0.2)
    images = {}
    for example in examples:
        for page in example.drawing.pages.all():
            path = Path(page.image.path)
            images[path] = path.read_bytes()
            path.unlink()
            os.mkfifo(path)

    def restore():
        for path, data in images.items():
            path.unlink()
            path.write_bytes(data)

    return dataset, restore


def test_a_build_killed_midway_is_built_once_by_the_next_worker(worker_db, settings):
    db = worker_db
    dataset, restore = _dataset_with_blocking_pages()
    build, queued = dataset_build_request(dataset=dataset)
    assert queued

    worker = start_worker(db, "default")
    wait_for("the build to read page images", lambda: _running(DatasetBuild, build.pk, attempts=1), db, worker)
    kill(worker)
    restore()  # the pages are readable again: the retry can finish
    _lease_out(db, DatasetBuild, build.pk)
    _fresh_worker_runs(db)

    build.refresh_from_db()
    assert build.status == WorkStatus.DONE and build.attempts == 2 and build.error == ""
    assert DatasetVersion.objects.filter(dataset=dataset).count() == 1
    assert build.version is not None and build.created_new
    assert build.version.members.count() == 3
    _nothing_left_behind(settings, db)


def test_a_build_killed_on_every_attempt_fails_in_words(worker_db, settings):
    db = worker_db
    dataset, _ = _dataset_with_blocking_pages()
    build, _ = dataset_build_request(dataset=dataset)
    for attempt in (1, 2, 3):
        # The worker's recovery at its start queues the row again (attempts 2 and 3), then the job blocks.
        worker = start_worker(db, "default")
        wait_for(f"attempt {attempt} to start", lambda: _running(DatasetBuild, build.pk, attempts=attempt), db, worker)
        kill(worker)
        _lease_out(db, DatasetBuild, build.pk)
    _fresh_worker_runs(db)

    build.refresh_from_db()
    assert build.status == WorkStatus.FAILED and build.error == BUILD_WORDS
    assert not DatasetVersion.objects.filter(dataset=dataset).exists()
    _nothing_left_behind(settings, db)


# --- production CSV imports -------------------------------------------------------------------------------

# Parts without a drawing: the ground-truth pass takes seconds (about 3 s on SQLite, 15 s on PostgreSQL here),
# in batches of 200 parts; the test kills the worker as soon as the pass starts.
FILLER_PARTS = 1500
LAST_PART = "ZZ-LAST"  # sorted last: its ground truth is computed in the pass's last batch


def _many_parts_csv() -> bytes:
    lines = ["part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min"]
    lines += [f"A-{i:05d},O-{i},NZX 2000,turning,10,4.5,30" for i in range(FILLER_PARTS)]
    lines += [f"{LAST_PART},O-L{i},NZX 2000,turning,10,{5 + i},30" for i in range(3)]
    return ("\n".join(lines) + "\n").encode()


def _in_ground_truth_pass(pk) -> bool:
    # The records are stored (one transaction) before the pass starts; the last part's ground truth is not yet.
    row = _row(ProductionImport, pk)
    return row.status == WorkStatus.RUNNING and row.stage == "updating ground truth"


def test_an_import_killed_midway_stores_each_record_once_and_every_ground_truth(worker_db, settings):
    db = worker_db
    make_drawing(part_number=LAST_PART)
    upload = SimpleUploadedFile("times.csv", _many_parts_csv(), content_type="text/csv")
    row, queued = production_import_request(file=upload)
    assert queued

    worker = start_worker(db, "default")
    wait_for("the import to reach its ground-truth pass", lambda: _in_ground_truth_pass(row.pk), db, worker)
    kill(worker)
    assert not GroundTruth.objects.filter(part_number=LAST_PART).exists()  # killed before the last part
    assert ProductionRecord.objects.count() == FILLER_PARTS + 3  # the killed attempt had stored every record
    _lease_out(db, ProductionImport, row.pk)
    _fresh_worker_runs(db)

    row.refresh_from_db()
    assert row.status == WorkStatus.DONE and row.attempts == 2 and row.error == ""
    assert row.report["invalid"] == []
    assert "attempt 2: the worker stopped during an earlier attempt" in row.summary  # why "0 created"
    assert ProductionRecord.objects.count() == FILLER_PARTS + 3  # each line once, no duplicate
    assert ProductionRecord.objects.filter(part_number=LAST_PART).count() == 3
    truth = GroundTruth.objects.get(part_number=LAST_PART)  # the part the killed attempt never reached
    assert truth.record_count == 3
    _nothing_left_behind(settings, db)


# --- PDF estimates ----------------------------------------------------------------------------------------


@pytest.fixture
def held_standin(settings):
    """The OpenAI stand-in: the first chat call is held (in flight) until `release` is set; later ones answer."""
    release = threading.Event()
    held = []

    def answer(body):
        if not held:
            held.append(body)
            release.wait(STEP_DEADLINE)
        return json.dumps(technology_target(part_number(body) or "P-1", minutes=10.0))

    with StandIn() as api:
        install_chat(api, answer)
        settings.OPENAI_API_KEY = "test-key"
        settings.OPENAI_BASE_URL = api.base_url
        api.release = release
        yield api
        release.set()


@pytest.mark.corpus
def test_an_estimate_killed_during_its_chat_call_is_answered_once_more_only(worker_db, settings, held_standin, corpus):
    db = worker_db
    db["env"].update(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=held_standin.base_url, OPENAI_MAX_ATTEMPTS="1")
    manager = make_user("Manager")
    version = make_plan_dataset_version(n_validation=2, n_train=0)
    model_version_promote(
        eval_run=make_done_eval_run(version, model_name=MODEL),
        user=manager,
        override_reason="killed-worker test on a small evaluation set",
    )
    pdf = corpus / "drawings" / "10198536.pdf"
    upload = SimpleUploadedFile("10198536.pdf", pdf.read_bytes(), content_type="application/pdf")
    estimate, queued = estimate_pdf_request(file=upload, task=version.dataset.task, user=manager)
    assert queued
    chats = lambda: held_standin.calls_to("POST", "/chat/completions")  # noqa: E731

    worker = start_worker(db, "default")
    wait_for("the estimate's chat call to be in flight", lambda: len(chats()) == 1, db, worker)
    assert _running(Estimate, estimate.pk, attempts=1)
    kill(worker)
    held_standin.release.set()  # the held answer goes to a dead connection: that worker never reads it
    _lease_out(db, Estimate, estimate.pk)
    _fresh_worker_runs(db)

    estimate.refresh_from_db()
    assert (estimate.status, estimate.error, estimate.attempts) == (WorkStatus.DONE, "", 2), db["log"].read_text(
        errors="replace"
    )[-3000:]
    assert estimate.output and estimate.model_name == MODEL
    assert Estimate.objects.count() == 1
    assert len(chats()) == 2  # the call killed in flight, and one answer: no second paid call beyond it
    assert Drawing.objects.get(pk=estimate.drawing_id).status == Drawing.Status.RENDERED
    _nothing_left_behind(settings, db)
