"""Periodic background jobs, run by the worker's scheduler.

Each job runs its function, then schedules its next run under the same job id, so there is always
exactly one pending instance however often it is (re)installed. `periodic_install_all()` runs at
worker start-up (`manage.py schedule_periodic`), which also catches up on work left while Redis was away.
"""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.utils.module_loading import import_string
from rq.exceptions import NoSuchJobError
from rq.job import Job

logger = logging.getLogger(__name__)

# name -> (dotted path of the function, setting holding the interval in seconds, queue)
PERIODIC_JOBS = {
    "reconcile-drawings": ("curation.jobs.drawings_reconcile", "RECONCILE_INTERVAL_SECONDS", "render"),
    "sync-runs": ("finetune.jobs.training_runs_sync_all", "RUN_SYNC_INTERVAL_SECONDS", "openai"),
    "reconcile-evals": ("finetune.jobs.eval_runs_reconcile_job", "RECONCILE_INTERVAL_SECONDS", "openai"),
    "score-estimates": ("finetune.jobs.estimates_score_stale_job", "ESTIMATE_SCORE_INTERVAL_SECONDS", "default"),
}


def _job_id(name: str) -> str:
    return f"periodic-{name}"


def periodic_run(name: str) -> None:
    path, interval_setting, queue_name = PERIODIC_JOBS[name]
    try:
        import_string(path)()
    finally:
        _schedule(name, delay=getattr(settings, interval_setting))


def _schedule(name: str, *, delay: int) -> None:
    _, _, queue_name = PERIODIC_JOBS[name]
    queue = django_rq.get_queue(queue_name)
    job_id = _job_id(name)
    try:
        Job.fetch(job_id, connection=queue.connection).cancel()
    except NoSuchJobError:
        pass
    queue.enqueue_in(timedelta(seconds=delay), periodic_run, name, job_id=job_id)


def periodic_install_all(*, delay: int = 0) -> list[str]:
    """(Re)install every periodic job to run after `delay` seconds; returns their names."""
    for name in PERIODIC_JOBS:
        _schedule(name, delay=delay)
    return list(PERIODIC_JOBS)
