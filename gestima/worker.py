"""The RQ worker class of the project (settings.RQ["WORKER_CLASS"]): RQ's worker, plus the recovery of
jobs whose worker was killed, at start and every JOB_RECOVER_INTERVAL_SECONDS (gestima.recovery).

The periodic recovery runs on a thread of the worker, and RQ forks a work-horse per job: a fork taken while
that thread is inside the database driver copies its locks held, and the work-horse hangs on its first
query. The two never overlap: the recovery and the fork take one lock.

`RenderWorker` (the render queue's, `--worker-class gestima.worker.RenderWorker`) runs each job in its own
process instead, so PyMuPDF is imported once and the capped render process is forked once and reused.
"""

import logging
import threading

from django.conf import settings
from django.db import connections
from rq.worker import SimpleWorker
from rq.worker import Worker as RQWorker

from gestima.recovery import abandoned_jobs_recover

logger = logging.getLogger(__name__)


class Worker(RQWorker):
    _recovery_lock = threading.Lock()

    def fork_work_horse(self, job, queue):
        # The work-horse runs the job inside this call and exits: only the worker's side releases the lock.
        with self._recovery_lock:
            return super().fork_work_horse(job, queue)

    def work(self, *args, **kwargs):
        try:
            abandoned_jobs_recover(sweep=True)
        except Exception:  # noqa: BLE001 - a worker that cannot recover others' jobs still does its own
            logger.exception("recovery at worker start failed")
        finally:
            # Work-horses are forked from this process: they must not share its database connection.
            connections.close_all()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._recover_periodically, args=(stop, self._recovery_lock), name="job-recovery", daemon=True
        )
        thread.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            stop.set()

    @staticmethod
    def _recover_periodically(stop: threading.Event, lock: threading.Lock) -> None:
        # A thread of the worker's main process (never of a work-horse), with its own database connection,
        # opened and closed under the lock, so no fork copies it half-used.
        while not stop.wait(settings.JOB_RECOVER_INTERVAL_SECONDS):
            with lock:
                try:
                    abandoned_jobs_recover()
                except Exception:  # noqa: BLE001
                    logger.exception("periodic recovery of abandoned jobs failed")
                finally:
                    connections.close_all()


class RenderWorker(SimpleWorker, Worker):
    """The render queue's worker: jobs run in this process, one after another, with no work-horse per job.

    A work-horse per job would import PyMuPDF and fork a render process for every drawing (about 1.5 s a
    job). Here `curation.rendering` keeps one capped render process for the life of the worker, and it
    still gives each drawing its memory cap, its deadline and its own failure. RQ's job timeout is
    SIGALRM in this process: it interrupts the render, whose process is then killed and replaced.
    A killed worker is taken back like any other (the lease on the row; its render folder carries this
    process's pid). Forking the render process needs no lock against the recovery thread: the render
    process never opens the database.
    """

    def execute_job(self, job, queue):
        try:
            return super().execute_job(job, queue)
        finally:
            _connections_check()


def _connections_check() -> None:
    """Keep this thread's database connections from job to job (closing an SQLite connection in WAL mode
    and opening it again cost ~15 ms a job), but drop one left broken (a database restart) or with its
    autocommit changed, as Django does between requests. One inside a transaction block (a test's) stays."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block:
            continue
        if connection.errors_occurred or connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
            connection.close_if_unusable_or_obsolete()
