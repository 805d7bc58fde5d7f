"""Live accuracy: estimates scored against what the shop really measured (the part's ground truth).

An estimate is made before its part is produced; when production records arrive, curation recomputes the
part's GroundTruth and the estimate can be scored: its APE per machine and operation and its overall score,
with the functions an eval run's metrics use (finetune/metrics.py), so live and eval MAPE are one formula.

A person never sees a stale score: an estimate is (re)scored whenever its part's ground truth is newer than
the one it was scored against (`GroundTruth.computed_at` moves only when the numbers change), and its score
is cleared when the ground truth goes away. The periodic job and the `score_estimates` command both call
`estimates_score_stale`, which is idempotent: a second call finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from curation.models import GroundTruth
from curation.services.ground_truth import ground_truth_target
from finetune import metrics
from finetune.models import Estimate, EvalResult
from finetune.services.promotion import primary_numeric_path

# Estimates scored per transaction: a batch holds its rows' locks briefly, and a crash loses at most one batch
# (the next run finds those estimates still stale).
BATCH = 200
NOT_ANSWERED = (EvalResult.ErrorKind.REFUSAL, EvalResult.ErrorKind.INVALID_JSON, EvalResult.ErrorKind.API_ERROR)
SCORE_FIELDS = ["live_score", "live_errors", "live_ape_sum", "live_ape_n", "scored_ground_truth_at", "scored_at"]


@dataclass(frozen=True)
class ScoreReport:
    scored: int = 0
    cleared: int = 0


def _ground_truth_at():
    return Subquery(GroundTruth.objects.filter(part_number=OuterRef("drawing__part_number")).values("computed_at")[:1])


def estimates_stale():
    """Estimates of numeric tasks whose part has ground truth they were not scored against (never scored, or
    scored against an older ground truth)."""
    return (
        Estimate.objects.exclude(drawing__part_number="")
        .filter(task__metric_spec__has_key="numeric")
        .annotate(ground_truth_at=_ground_truth_at())
        .filter(ground_truth_at__isnull=False)
        .filter(Q(scored_ground_truth_at__isnull=True) | ~Q(scored_ground_truth_at=F("ground_truth_at")))
    )


def estimate_record(*, estimate: Estimate, target: dict) -> dict:
    """The estimate as one record of finetune.metrics (the shape eval_run_records gives an eval's results)."""
    answered = estimate.error_kind not in NOT_ANSWERED
    return {
        "id": estimate.pk,
        "target": target,
        "output": estimate.output if answered else None,
        "json_valid": answered,
        "schema_valid": estimate.error_kind == "",
        "error_kind": estimate.error_kind,
        "tags": {},
    }


def estimate_score(*, estimate: Estimate, ground_truth: GroundTruth, now=None) -> Estimate:
    """Score one estimate against the ground truth (fields set on `estimate`, not saved: callers write in
    batches). A value the model did not give counts as a 100 % error, as in an eval."""
    spec = estimate.task.metric_spec or {}
    key_fields = spec.get("key", [])
    record = estimate_record(estimate=estimate, target=ground_truth_target(ground_truth))
    errors = {path: metrics.value_errors(record, path, key_fields)[0] for path in spec.get("numeric", [])}
    primary = errors.get(primary_numeric_path(estimate.task)) or []
    estimate.live_errors = errors
    estimate.live_score = metrics.example_score(record, spec) if any(errors.values()) else None
    estimate.live_ape_sum = sum(e["ape"] for e in primary) if primary else None
    estimate.live_ape_n = len(primary)
    estimate.scored_ground_truth_at = ground_truth.computed_at
    estimate.scored_at = now or timezone.now()
    return estimate


def _score_batch(ids: list[int]) -> int:
    now = timezone.now()
    with transaction.atomic():
        estimates = list(Estimate.objects.filter(pk__in=ids).select_related("task", "drawing"))
        parts = {e.drawing.part_number for e in estimates}
        truths = {g.part_number: g for g in GroundTruth.objects.filter(part_number__in=parts)}
        scored = [
            estimate_score(estimate=e, ground_truth=truths[e.drawing.part_number], now=now)
            for e in estimates
            if e.drawing.part_number in truths
        ]
        Estimate.objects.bulk_update(scored, SCORE_FIELDS)
    return len(scored)


def estimates_clear_orphaned() -> int:
    """Clear scores whose ground truth is gone (its records deleted): no score stands without its measure."""
    gone = ~Exists(GroundTruth.objects.filter(part_number=OuterRef("drawing__part_number")))
    return (
        Estimate.objects.filter(scored_ground_truth_at__isnull=False)
        .filter(gone)
        .update(
            live_score=None,
            live_errors={},
            live_ape_sum=None,
            live_ape_n=0,
            scored_ground_truth_at=None,
            scored_at=None,
        )
    )


def estimates_score_stale(*, batch: int = BATCH, limit: int | None = None) -> ScoreReport:
    """Score every stale estimate (or the first `limit`), `batch` per transaction; clear orphaned scores."""
    scored = 0
    last = 0
    while limit is None or scored < limit:
        size = batch if limit is None else min(batch, limit - scored)
        # Walk by id: an estimate that cannot be scored this time is never picked again in the same call.
        ids = list(estimates_stale().filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            break
        scored += _score_batch(ids)
        last = ids[-1]
    return ScoreReport(scored=scored, cleared=estimates_clear_orphaned())
