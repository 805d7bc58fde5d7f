"""Enqueueing background jobs: ids only, after the transaction commits, once per job id.

Callers learn at once when Redis is away (`QueueUnavailable`) so the admin can say so; the rows stay
in their waiting state and the reconcilers enqueue them again later.

The one rule for when a job is sent: `enqueue_on_commit` waits for the commit itself
(`transaction.on_commit`), and the queues send when asked (settings `RQ["COMMIT_MODE"] = "auto"`).
django-rq's own wait ("on_db_commit") would be a second one, and it looks at `in_atomic_block`, not at
the commit: a callback that runs inside an outer atomic block (a test's transaction) defers again, to a
commit that never comes when the callback is run by hand, or after every other captured callback, which
splits the "already pending?" check from the enqueue it guards (two sends could both pass it and queue one
job id twice). After a real commit the two modes behave alike. Scheduled jobs (`enqueue_in`: the periodic
jobs) never pass through that wait at all. Application code sends jobs only through this module
(and the periodic schedules, gestima/periodic.py): tests/gestima/test_job_seams.py checks it.
"""

import logging

import django_rq
from django.db import transaction
from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from rq.exceptions import NoSuchJobError

logger = logging.getLogger(__name__)

_PENDING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


class QueueUnavailable(Exception):
    """Redis does not answer: the job was not enqueued (the row keeps its waiting state)."""


def queue_ping(name: str = "default") -> None:
    try:
        django_rq.get_connection(name).ping()
    except (RedisError, OSError) as exc:
        # No promise of a retry here: only some callers have a reconciler that retries (drawings); each says so.
        raise QueueUnavailable(f"The job queue is unavailable (Redis: {exc}).") from exc


def job_is_pending(*, queue_name: str, job_id: str) -> bool:
    connection = django_rq.get_connection(queue_name)
    try:
        return Job.fetch(job_id, connection=connection).get_status(refresh=True) in _PENDING
    except NoSuchJobError:
        return False


def job_forget(*, queue_name: str, job_id: str) -> None:
    """Delete a job whose worker is gone (its row's lease ran out) so it can be enqueued again.

    RQ keeps a killed worker's job `started` until its own clean-up, minutes later, and then reports it
    through the on_failure hook as AbandonedJobError; deleting it first means neither blocks the retry.
    """
    connection = django_rq.get_connection(queue_name)
    try:
        Job.fetch(job_id, connection=connection).delete()
    except NoSuchJobError:
        pass


def enqueue_on_commit(queue_name: str, func, *args, job_id: str | None = None, **kwargs) -> None:
    """Enqueue `func(*args)` once the current transaction commits (at once outside one).

    With a `job_id`, a job already waiting or running under that id is not enqueued again, so a
    reconciler and a user click can never render the same drawing twice at once.
    Raises QueueUnavailable when Redis does not answer now; a failure after commit is logged and
    left to the reconciler.
    """
    queue_ping(queue_name)

    def send():
        try:
            if job_id and job_is_pending(queue_name=queue_name, job_id=job_id):
                return
            queue = django_rq.get_queue(queue_name)
            queue.enqueue(func, *args, job_id=job_id, **kwargs)
        except (RedisError, OSError):
            logger.exception("enqueue of %s failed after commit; the reconciler will retry", job_id or func)

    transaction.on_commit(send)
