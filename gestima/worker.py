"""The RQ worker class of the project (settings.RQ["WORKER_CLASS"]): RQ's worker, plus the recovery of
jobs whose worker was killed, at start and every JOB_RECOVER_INTERVAL_SECONDS (gestima.recovery).

The periodic recovery runs on a thread of the worker, and RQ forks a work-horse per job: a fork taken while
that thread is inside the database driver copies its locks held, and the work-horse hangs on its first
query. The two never overlap: the recovery and the fork take one lock.
"""
import logging
import threading

from django.conf import settings
from django.db import connections
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
        thread = threading.Thread(target=self._recover_periodically, args=(stop, self._recovery_lock),
                                  name="job-recovery", daemon=True)
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
