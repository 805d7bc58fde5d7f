"""Killed training-run starts: a real `manage.py rqworker` is SIGKILLed while it uploads a run's files or waits for the
provider's answer to the job it created; a fresh worker's recovery (gestima.recovery) starts the run again.

What a person would notice is checked: the run reaches the provider's job with exactly one remote job (the one a
killed worker made is adopted, never a second one paid for), a file whose id was stored is not uploaded again; or,
killed on every start, the run fails in words. No `.partial` file is left under the run files.

Where the worker waits is made certain without sleeping: the local OpenAI stand-in holds an upload (or the answer
to a job it has already created) until the test lets it go.
"""

import os
import threading
import time
from pathlib import Path

import django_rq
import pytest
from django.utils import timezone

from finetune.models import TrainingRun
from finetune.services.run_launch import training_run_create, training_run_launch
from gestima.recovery import abandoned_jobs_recover
from tests.factories import make_base_model, make_dataset_version
from tests.openai_standin import StandIn
from tests.openai_standin.fine_tuning import FineTuningAPI
from tests.workers import LEASE, STEP_DEADLINE, kill, start_worker, wait_for

FILES = "/files"
JOBS = "/fine_tuning/jobs"
STOPPED_WORDS = (
    "The worker stopped while starting this run (killed or out of memory) 3 times; it was not retried again. "
    "Relaunch to retry; files already uploaded are reused."
)


class HeldUploads:
    """Uploads of the named file are held (in flight) until `release` is set, the first `times` of them."""

    def __init__(self, api: StandIn, fine_tuning: FineTuningAPI):
        self.fine_tuning = fine_tuning
        self.release = threading.Event()
        self.filename = ""
        self.times = 0
        self.held = 0
        api.route("POST", FILES)(self.files_create)  # before the stand-in's own route: this one answers

    def files_create(self, request):
        filename, _ = request.form()["file"]
        if filename == self.filename and self.held < self.times:
            self.held += 1
            self.release.wait(STEP_DEADLINE)
        return self.fine_tuning.files_create(request)


@pytest.fixture
def api(settings):
    with StandIn() as api:
        fine_tuning = FineTuningAPI()
        api.holds = HeldUploads(api, fine_tuning)
        fine_tuning.install(api)
        settings.OPENAI_API_KEY = "sk-test-not-a-real-key"
        settings.OPENAI_BASE_URL = api.base_url
        settings.OPENAI_TIMEOUT_SECONDS = 5
        settings.OPENAI_MAX_ATTEMPTS = 1
        yield api
        api.holds.release.set()
        fine_tuning.create_delay = 0


@pytest.fixture
def run_db(worker_db, api, settings):
    worker_db["env"].update(
        OPENAI_API_KEY="sk-test-not-a-real-key",
        OPENAI_BASE_URL=api.base_url,
        OPENAI_MAX_ATTEMPTS="1",
        OPENAI_TIMEOUT_SECONDS=str(STEP_DEADLINE + 30),  # a held call stays in flight until the kill
        RUNS_ROOT=str(settings.RUNS_ROOT),
    )
    return worker_db


def _launched_run() -> TrainingRun:
    version = make_dataset_version()  # train and validation splits: two uploads
    base_model = make_base_model("gpt-4o-mini-2024-07-18", price="3.00")
    # user=None: the shell operator, as `launch_run` launches; the start job is queued at once (no transaction).
    run = training_run_create(dataset_version=version, base_model=base_model, user=None)
    return training_run_launch(run=run, user=None)


def _run(pk) -> TrainingRun:
    return TrainingRun.objects.get(pk=pk)


def _uploads(api, filename: str) -> int:
    return sum(1 for call in api.calls_to("POST", FILES) if call.form()["file"][0] == filename)


def _lease_out(db, pk) -> None:
    """The killed start's lease has run out (its heartbeat died with it), and one lease more (its files' age)."""
    wait_for(
        "the killed start's lease to run out",
        lambda: (_run(pk).start_lease_until or timezone.now()) < timezone.now(),
        db,
    )
    time.sleep(LEASE + 0.5)


def _fresh_worker_runs(db) -> None:
    """A burst worker: its recovery at start queues the abandoned start again, then it runs the queue dry."""
    worker = start_worker(db, "openai", burst=True)
    wait_for("the fresh worker to finish", lambda: worker.poll() is not None, db, deadline=STEP_DEADLINE)
    assert worker.returncode == 0, db["log"].read_text(errors="replace")[-3000:]


def _nothing_left_behind(settings) -> None:
    assert [p.name for p in Path(settings.MEDIA_ROOT).rglob("*.partial")] == [], "a half-written run file was left"
    assert not TrainingRun.objects.filter(status="uploading").exists()
    assert django_rq.get_queue("openai").count == 0


def test_a_start_killed_mid_upload_is_started_again_and_reuses_the_stored_file(run_db, api, settings):
    db = run_db
    api.holds.filename, api.holds.times = "validation.jsonl", 1
    run = _launched_run()

    worker = start_worker(db, "openai")
    wait_for("the validation upload to be in flight", lambda: api.holds.held == 1, db, worker)
    held = _run(run.pk)
    assert held.status == "uploading" and held.start_attempts == 1 and held.training_file_id
    kill(worker)
    api.holds.release.set()  # the held upload lands for a dead connection: that worker never reads its id
    _lease_out(db, run.pk)
    _fresh_worker_runs(db)

    run.refresh_from_db()
    assert run.status in ("validating_files", "running") and run.job_id, (run.status, run.error_message)
    assert run.start_attempts == 2 and run.error_code == ""
    assert run.training_file_id == held.training_file_id
    assert len(api.fine_tuning.jobs) == 1 and len(api.calls_to("POST", JOBS)) == 1
    assert _uploads(api, "train.jsonl") == 1  # its id was stored before the kill: not sent again
    assert _uploads(api, "validation.jsonl") == 2  # the one killed in flight, and the retry's
    assert any("started again" in entry.get("note", "") for entry in run.timeline)
    _nothing_left_behind(settings)


def test_a_start_killed_after_the_provider_made_the_job_adopts_that_job(run_db, api, settings):
    db = run_db
    api.fine_tuning.create_delay = STEP_DEADLINE  # the job is made; its answer is held
    run = _launched_run()

    worker = start_worker(db, "openai")
    wait_for("the job to be created", lambda: len(api.fine_tuning.jobs) == 1, db, worker)
    assert _run(run.pk).job_id is None  # the worker has not read the answer
    kill(worker)
    api.fine_tuning.create_delay = 0
    _lease_out(db, run.pk)
    _fresh_worker_runs(db)

    run.refresh_from_db()
    assert run.status in ("validating_files", "running") and run.error_code == ""
    assert list(api.fine_tuning.jobs) == [run.job_id]  # the dead worker's job, adopted: no second paid job
    assert len(api.calls_to("POST", JOBS)) == 1
    assert _uploads(api, "train.jsonl") == 1 and _uploads(api, "validation.jsonl") == 1
    assert any("found by metadata" in entry.get("note", "") for entry in run.timeline)
    _nothing_left_behind(settings)


def test_a_start_killed_on_every_attempt_fails_in_words(run_db, api, settings):
    db = run_db
    api.holds.filename, api.holds.times = "train.jsonl", 3
    run = _launched_run()
    for attempt in (1, 2, 3):
        # The worker's recovery at its start queues the run again (starts 2 and 3), then the upload is held.
        worker = start_worker(db, "openai")
        wait_for(
            f"start {attempt}'s upload to be in flight",
            lambda: api.holds.held == attempt and _run(run.pk).start_attempts == attempt,
            db,
            worker,
        )
        kill(worker)
        _lease_out(db, run.pk)
    _fresh_worker_runs(db)

    run.refresh_from_db()
    assert run.status == "failed" and run.error_code == "worker_stopped"
    assert run.error_message == STOPPED_WORDS
    assert run.job_id is None and api.fine_tuning.jobs == {}
    assert run.orphaned_files == []  # no upload's id was ever stored
    _nothing_left_behind(settings)


def test_the_recovery_sweeps_run_files_of_dead_processes_only(db, settings):
    settings.JOB_LEASE_SECONDS = LEASE
    folder = Path(settings.RUNS_ROOT) / "17"
    folder.mkdir(parents=True)
    dead = _dead_pid()
    left = folder / f".train.jsonl.{dead}.0123abcd.partial"
    left.write_bytes(b'{"messages": []}\n')
    working = folder / f".validation.jsonl.{os.getpid()}.4567cdef.partial"  # this process: still writing
    working.write_bytes(b"")
    fresh = folder / f".validation.jsonl.{dead}.89abcdef.partial"  # younger than a lease: left alone for now
    fresh.write_bytes(b"")
    finished = folder / "train.jsonl"
    finished.write_bytes(b'{"messages": []}\n')
    old = time.time() - LEASE - 5
    for path in (left, working, finished):
        os.utime(path, (old, old))

    abandoned_jobs_recover(sweep=True)
    assert sorted(p.name for p in folder.iterdir()) == sorted([working.name, fresh.name, finished.name])
    abandoned_jobs_recover()  # the pass every 30 s leaves files to the sweep at a worker's start
    assert fresh.exists()


def _dead_pid() -> int:
    """A pid no process has now: a child that has exited and been reaped."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
