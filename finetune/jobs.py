"""RQ entry points of the training side: thin wrappers that load rows by id and call services."""
from finetune.services import runs as run_services


def training_run_start_job(run_id: int) -> str:
    run = run_services.training_run_start(run_id=run_id)
    return run.status


def training_run_start_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """on_failure hook: the error goes on the run (never only in the worker's log)."""
    run_id = job.args[0] if job.args else None
    if run_id is not None:
        run_services.training_run_start_failed(run_id=run_id, message=str(exc_value),
                                               error_type=getattr(exc_type, "__name__", str(exc_type)))


def training_runs_sync_all() -> dict:
    """The periodic job (gestima/periodic.py): one job syncs every active run."""
    return run_services.training_runs_sync_all()


# --- evaluation (issue 6) ---------------------------------------------------------------------
def eval_run_execute_job(eval_run_id: int) -> None:
    from finetune.models import EvalRun
    from finetune.services.evals import eval_run_execute

    run = EvalRun.objects.filter(pk=eval_run_id).first()
    if run is not None:
        eval_run_execute(eval_run=run)


def eval_run_job_failed(job, connection, type, value, traceback) -> None:
    """RQ on_failure hook: the reason goes on the eval run's row (a resume continues it)."""
    from finetune.services.evals import eval_run_fail

    eval_run_fail(eval_run_id=job.args[0], error=f"{getattr(type, '__name__', type)}: {value}")


def eval_runs_reconcile_job() -> list[int]:
    """Periodic: queue again eval runs left queued without a job or running without a live worker."""
    from finetune.services.evals import eval_runs_reconcile

    return eval_runs_reconcile()


def training_run_deployment_wait_job(run_id: int) -> str:
    """Wait for an Azure deployment to be provisioned (finetune/services/deployments.py)."""
    from finetune.services.deployments import training_run_deployment_wait

    return training_run_deployment_wait(run_id=run_id).deployment_state
