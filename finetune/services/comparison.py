"""Paired comparison of two eval runs on the examples both evaluated (computed on demand, not stored).

Kept as a computation rather than a model: results are frozen once a run is done, the bootstrap is
seeded, so the same two runs always give the same comparison; storing it would only add a copy that
can go stale. The promotion report stores the comparison it was decided on.
"""

from __future__ import annotations

from django.conf import settings

from finetune import metrics as metric_lib
from finetune.models import EvalRun
from finetune.services.eval_results import eval_run_records


class ComparisonError(Exception):
    pass


def eval_runs_compare(*, run_a: EvalRun, run_b: EvalRun) -> dict:
    """B against A (differences are B − A), paired by example; both runs must be done and of one task."""
    if run_a.pk == run_b.pk:
        raise ComparisonError("Choose two different eval runs.")
    if run_a.task_id != run_b.task_id:
        raise ComparisonError(f"Eval runs {run_a.pk} and {run_b.pk} evaluate different tasks.")
    for run in (run_a, run_b):
        if run.status != EvalRun.Status.DONE:
            raise ComparisonError(f"Eval run {run.pk} is {run.status}, not done.")
    result = metric_lib.compare_runs(
        eval_run_records(run_a),
        eval_run_records(run_b),
        run_a.task.metric_spec or {},
        n_boot=int(getattr(settings, "EVAL_BOOTSTRAP_SAMPLES", 1000)),
    )
    result["a"] = {
        "id": run_a.pk,
        "model": run_a.model_name,
        "kind": run_a.model_kind,
        "dataset_version": run_a.dataset_version_id,
    }
    result["b"] = {
        "id": run_b.pk,
        "model": run_b.model_name,
        "kind": run_b.model_kind,
        "dataset_version": run_b.dataset_version_id,
    }
    if not result["n_shared"]:
        raise ComparisonError(f"Eval runs {run_a.pk} and {run_b.pk} share no evaluated example.")
    return result
