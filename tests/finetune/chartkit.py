"""Makers for the chart tests (client and browser): a training run with metrics and checkpoints, two finished
eval runs of one version whose errors fall in known APE bands, and that version's frozen counts.

(Kept beside the tests that use them; the shared makers are in tests/factories.py.)
"""

from __future__ import annotations

import json
import re

from curation.models import DatasetVersion
from finetune.models import RunCheckpoint, RunMetric, TrainingRun
from gestima.roles import roles_sync
from tests.factories import make_base_model, make_user
from tests.finetune.evalkit import FT_MODEL, make_done_eval_run, make_plan_dataset_version

# Machine time answered = target × factor, per validation position: APE 0 %, 12 %, 40 %, 200 % (both operations).
FACTORS = {0: 1.0, 1: 1.12, 2: 1.4, 3: 3.0}
# Train loss / accuracy per step; validation every other step; checkpoints at steps 2 and 4.
STEPS = [(1, 2.0, 0.5), (2, 1.5, 0.6), (3, 1.2, 0.7), (4, 0.9, 0.75)]


def make_chart_house() -> dict:
    roles_sync()
    manager = make_user("Manager", username="mara", password="Manager-pw-2026")
    reviewer = make_user("Reviewer", username="rita", password="Review-pw-2026")
    version = make_plan_dataset_version(
        n_validation=4,
        n_train=2,
        minutes=lambda i: [3, 8, 15, 60][i],
        tags=lambda i: {"machine": ["NZX 2000", "DMU 50"], "material": ["C45", "C45", "AlMg3", "C45"][i]},
    )
    DatasetVersion.objects.filter(pk=version.pk).update(
        counts={"train": 2, "validation": 4, "total": 6, "groups": 6, "train_groups": 2, "validation_groups": 4},
        tag_counts={"train": {"material": {"C45": 2}}, "validation": {"material": {"C45": 3, "AlMg3": 1}}},
    )
    version.refresh_from_db()
    run = TrainingRun.objects.create(
        dataset_version=version,
        base_model=make_base_model(),
        provider="openai",
        status="running",
        job_id="ftjob-chart",
        created_by=manager,
    )
    for step, loss, accuracy in STEPS:
        RunMetric.objects.create(
            run=run,
            step=step,
            train_loss=loss,
            train_accuracy=accuracy,
            valid_loss=loss + 0.1 if step % 2 == 0 else None,
        )
    for step in (2, 4):
        RunCheckpoint.objects.create(
            run=run, remote_id=f"ftckpt-{step}", step=step, fine_tuned_model_checkpoint=f"ft:ckpt-step-{step}"
        )
    base = make_done_eval_run(version, factor=lambda position: FACTORS.get(position, 1.0))
    tuned = make_done_eval_run(
        version, model_name=FT_MODEL, kind="fine_tuned", factor=lambda position: {0: 1.2, 3: 1.5}.get(position, 1.0)
    )
    return {"manager": manager, "reviewer": reviewer, "version": version, "run": run, "base": base, "tuned": tuned}


def chart_json(html: str, chart_id: str) -> dict:
    """The spec a page carries for one chart (its json_script element), as charts.js reads it."""
    match = re.search(rf'<script id="{re.escape(chart_id)}-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no {chart_id} on the page"
    return json.loads(match.group(1))
