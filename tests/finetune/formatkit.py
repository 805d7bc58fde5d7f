"""Makers for the formatted-page tests (client and browser): a scored estimate, a promoted model version with its
card and report, a run with checkpoints. Hostile text goes where people type (reasons), to prove it shows as text."""

from __future__ import annotations

import datetime

from django.utils import timezone

from curation.services.production import production_records_import
from finetune.models import Estimate, RunCheckpoint, TrainingRun
from finetune.services.estimate_scores import estimates_score_stale
from finetune.services.promotion import model_version_promote
from tests.factories import make_base_model, make_dataset_version, make_drawing, make_task, technology_target
from tests.finetune.evalkit import make_done_eval_run, make_plan_dataset_version

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
FT_MODEL = "ft:gpt-4o-mini-2024-07-18:shop::fmt"
HEADER = "part_number,order_id,machine,operation,pieces,machine_time_min_per_piece,setup_min,recorded_at\n"


def make_scored_estimate(*, part: str = "FMT-1", provider: str = "openai_ft", reason: str = HOSTILE) -> Estimate:
    """A fallback's answer (turning 10 min/pc, milling 5, setup 30 each) scored against turning measured at 8 min
    and 40 min setup: 25 % off on both."""
    estimate = Estimate.objects.create(
        task=make_task(),
        drawing=make_drawing(part_number=part),
        model_name=FT_MODEL,
        provider=provider,
        answered_by=Estimate.AnsweredBy.FALLBACK,
        fallback_reason=reason,
        output=technology_target(part, minutes=10.0),
    )
    production_records_import(text=HEADER + f"{part},O1,NZX 2000,turning,10,8.00,40,2024-01-02\n")
    assert estimates_score_stale().scored >= 1
    estimate.refresh_from_db()
    return estimate


def make_promoted_version(manager, *, reason: str = HOSTILE + " [click](javascript:alert(1))"):
    """A version promoted over a failing policy (MAPE 20 % > 15 %) with an override reason full of markup."""
    version = make_plan_dataset_version(n_validation=20, n_train=0)
    run = make_done_eval_run(version, factor=1.2)
    return model_version_promote(eval_run=run, user=manager, override_reason=reason)


CHECKPOINT_METRICS = [
    (10, {"step": 10, "train_loss": 1.23456, "train_mean_token_accuracy": 0.61, "valid_loss": 1.5}),
    (20, {"step": 20, "train_loss": 0.5, "train_mean_token_accuracy": 0.8125, "valid_loss": 0.75, "lr": 0.1}),
]


def make_run_with_checkpoints(*, provider: str = "openai") -> TrainingRun:
    now = timezone.now()
    run = TrainingRun.objects.create(
        dataset_version=make_dataset_version(),
        base_model=make_base_model(),
        provider=provider,
        status=TrainingRun.Status.SUCCEEDED,
        job_id=f"ftjob-fmt-{provider}",
        fine_tuned_model=FT_MODEL,
        launched_at=now - datetime.timedelta(hours=1),
        finished_at=now,
    )
    for step, metrics in CHECKPOINT_METRICS:
        RunCheckpoint.objects.create(
            run=run,
            remote_id=f"ftckpt-{provider}-{step}",
            step=step,
            fine_tuned_model_checkpoint=f"{FT_MODEL}:ckpt-step-{step}",
            metrics=metrics,
        )
    return run
