"""Periodic jobs: installing them again (every worker start) leaves exactly one pending run of each."""

import django_rq
import pytest
from django.core.management import call_command
from rq.registry import ScheduledJobRegistry

from gestima.periodic import PERIODIC_JOBS


def _pending_ids(queue_name):
    queue = django_rq.get_queue(queue_name)
    return queue.get_job_ids() + ScheduledJobRegistry(queue=queue).get_job_ids()


@pytest.mark.parametrize("delay", ["0", "60"])
def test_schedule_periodic_twice_leaves_one_pending_run_per_job(capsys, delay):
    call_command("schedule_periodic", "--delay", delay)
    call_command("schedule_periodic", "--delay", delay)
    assert "reconcile-drawings" in capsys.readouterr().out
    for name, (_, _, queue_name) in PERIODIC_JOBS.items():
        assert _pending_ids(queue_name).count(f"periodic-{name}") == 1, name


def test_reinstalling_while_a_run_waits_in_the_queue_does_not_run_it_twice():
    from rq.job import Job

    call_command("schedule_periodic", "--delay", "60")
    name, (_, _, queue_name) = next(iter(PERIODIC_JOBS.items()))
    queue = django_rq.get_queue(queue_name)
    # The scheduler has just moved the run into the queue, and a worker starts (and reinstalls) before it runs.
    job = Job.fetch(f"periodic-{name}", connection=queue.connection)
    ScheduledJobRegistry(queue=queue).remove(job)
    queue.enqueue_job(job)
    call_command("schedule_periodic", "--delay", "60")
    assert _pending_ids(queue_name).count(f"periodic-{name}") == 1
