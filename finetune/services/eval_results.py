"""An evaluation run's stored results: progress counts, the records the metrics read, and the run's end
(done with its metrics and cost, or failed with the reason a person can act on).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from curation.services.tasks import is_text_task
from finetune import metrics as metric_lib
from finetune.models import EvalResult, EvalRun


def eval_run_recount(run: EvalRun) -> None:
    """Progress counters (and the heartbeat a resume looks at) from the stored results."""
    results = EvalResult.objects.filter(eval_run=run)
    EvalRun.objects.filter(pk=run.pk).update(
        done_count=results.filter(status=EvalResult.Status.OK).count(),
        error_count=results.filter(status=EvalResult.Status.ERROR).count(),
        heartbeat_at=timezone.now(),
    )


def eval_run_records(eval_run: EvalRun) -> list[dict]:
    """The run's results in the shape finetune.metrics expects (targets from the frozen members)."""
    task = eval_run.task
    text_task = is_text_task(task)
    records = []
    results = EvalResult.objects.filter(eval_run=eval_run).select_related("member", "example").order_by("example_id")
    for result in results:
        target_text = result.member.target if result.member_id else result.example.target
        if text_task:
            target = target_text
        else:
            try:
                target = json.loads(target_text)
            except ValueError:
                target = None
        json_valid = result.error_kind not in (
            EvalResult.ErrorKind.REFUSAL,
            EvalResult.ErrorKind.INVALID_JSON,
            EvalResult.ErrorKind.API_ERROR,
        )
        records.append(
            {
                "id": result.example_id,
                "target": target,
                "output": result.parsed if json_valid else None,
                "json_valid": json_valid,
                "schema_valid": result.error_kind == "" and result.status == EvalResult.Status.OK,
                "error_kind": result.error_kind,
                "tags": result.example.tags or {},
            }
        )
    return records


def eval_run_finish(*, eval_run: EvalRun) -> EvalRun:
    """Totals and metrics from the stored results; the run is done."""
    run = EvalRun.objects.select_related("task").get(pk=eval_run.pk)
    records = eval_run_records(run)
    computed = metric_lib.run_metrics(
        records, run.task.metric_spec or {}, n_boot=int(getattr(settings, "EVAL_BOOTSTRAP_SAMPLES", 1000))
    )
    results = EvalResult.objects.filter(eval_run=run)
    totals = results.aggregate(cost=Sum("cost_usd"), inp=Sum("input_tokens"), out=Sum("output_tokens"))
    # One answer without a price makes the total unknown: a partial sum would look like the whole cost.
    cost_known = not results.filter(cost_usd__isnull=True).exists()
    eval_run_recount(run)
    answered = results.exclude(error_kind=EvalResult.ErrorKind.API_ERROR).count()
    status, error = EvalRun.Status.DONE, ""
    if run.total and not answered:
        # Metrics of zero answers would read as a model that answered nothing right; it was never reached.
        status, error = EvalRun.Status.FAILED, _nothing_answered(results)
    EvalRun.objects.filter(pk=run.pk).update(
        status=status,
        metrics=computed,
        cost_usd=(totals["cost"] or 0) if cost_known else None,
        input_tokens=totals["inp"] or 0,
        output_tokens=totals["out"] or 0,
        finished_at=timezone.now(),
        error=error,
    )
    run.refresh_from_db()
    return run


def _nothing_answered(results) -> str:
    """Why an eval run in which no example was answered failed: the commonest API error, with its count."""
    from collections import Counter

    errors = Counter(results.values_list("error_message", flat=True))
    if not errors:
        return "No example was answered."
    message, count = errors.most_common(1)[0]
    return (
        f"No example was answered: {count} of {sum(errors.values())} calls failed with {message}. "
        "Fix the cause, then resume the run (it asks only the examples without an answer)."
    )


def eval_run_fail(*, eval_run_id: int, error: str) -> None:
    """The run stopped (worker error, provider not configured): say why on the row; resume continues it."""
    EvalRun.objects.filter(pk=eval_run_id).exclude(status=EvalRun.Status.DONE).update(
        status=EvalRun.Status.FAILED, error=error[:5000], finished_at=timezone.now()
    )
