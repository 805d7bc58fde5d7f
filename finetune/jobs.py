"""RQ entry points of the training side: thin wrappers that take ids and call services.

Services enqueue these by dotted path ("finetune.jobs.<name>") and never import this module, so a job
always runs the service in the worker's own import and the services stay free of the queue's imports.
Every job takes ids only; each service it calls takes an id or loads the row itself.
"""

from finetune.models import EvalRun
from finetune.services import deployments, estimate_scores, eval_execute, eval_results, evals, run_start, run_sync


def training_run_start_job(run_id: int) -> str:
    run = run_start.training_run_start(run_id=run_id)
    return run.status


def training_run_start_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """on_failure hook: the error goes on the run (never only in the worker's log)."""
    run_id = job.args[0] if job.args else None
    if run_id is not None:
        run_start.training_run_start_failed(
            run_id=run_id, message=str(exc_value), error_type=getattr(exc_type, "__name__", str(exc_type))
        )


def training_runs_sync_all() -> dict:
    """The periodic job (gestima/periodic.py): one job syncs every active run."""
    return run_sync.training_runs_sync_all()


# --- evaluation -------------------------------------------------------------------------------
def eval_run_execute_job(eval_run_id: int) -> None:
    run = EvalRun.objects.filter(pk=eval_run_id).first()
    if run is not None:
        eval_execute.eval_run_execute(eval_run=run)  # it claims and reloads the row by id itself


def eval_run_job_failed(job, connection, type, value, traceback) -> None:
    """RQ on_failure hook: the reason goes on the eval run's row (a resume continues it)."""
    eval_results.eval_run_fail(eval_run_id=job.args[0], error=f"{getattr(type, '__name__', type)}: {value}")


def eval_runs_reconcile_job() -> list[int]:
    """Periodic: queue again eval runs left queued without a job or running without a live worker."""
    return evals.eval_runs_reconcile()


def training_run_deployment_wait_job(run_id: int) -> str:
    """Wait for an Azure deployment to be provisioned (finetune/services/deployments.py)."""
    return deployments.training_run_deployment_wait(run_id=run_id).deployment_state


# --- estimates for a posted PDF (render + ask) --------------------------------------------------
def estimate_request_job(estimate_id: int) -> str | None:
    """Render the estimate's drawing and ask the model; a re-run finds the row claimed or done and returns."""
    from finetune.services.estimate_queue import estimate_request_run

    estimate = estimate_request_run(estimate_id=estimate_id)
    return estimate.status if estimate else None


def estimate_request_job_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """on_failure hook: a crash or an RQ timeout is stored on the estimate instead of leaving it `running`."""
    from finetune.services.estimate_queue import ESTIMATE

    ESTIMATE.job_failed(job.args[0], exc_type=exc_type, exc_value=exc_value)


def estimates_score_stale_job() -> dict:
    """Periodic: score estimates whose part's ground truth arrived or changed since (live accuracy)."""
    report = estimate_scores.estimates_score_stale()
    return {"scored": report.scored, "cleared": report.cleared}
