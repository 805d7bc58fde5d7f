"""Makers for the dashboard tests (client and browser): a small house with something in every section.

(Kept beside the tests that use them; the shared makers are in tests/factories.py.)
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.utils import timezone

from curation.models import DatasetBuild, Drawing, Example, ExampleChange, ProductionImport
from finetune.models import Estimate, EvalRun, ModelVersion, RunMetric, TrainingRun
from tests.factories import make_base_model, make_dataset_version, make_drawing, make_example, make_task, make_user


def decide(example: Example, user, status: str, *, days_ago: int) -> ExampleChange:
    """A review decision as the review service records it, `days_ago` days back."""
    change = ExampleChange.objects.create(example=example, user=user, field="status", before="pending", after=status)
    ExampleChange.objects.filter(pk=change.pk).update(at=timezone.now() - datetime.timedelta(days=days_ago))
    return change


def make_house(*, scale: int = 1) -> dict:
    """Users of each role and data in every section of the dashboard; `scale` multiplies the rows (the figures
    a test reads grow with it, the dashboard's queries must not)."""
    rita = make_user("Reviewer", username="rita", password="Review-pw-2026")
    rolf = make_user("Reviewer", username="rolf", password="Review-pw-2026")
    mara = make_user("Manager", username="mara", password="Manager-pw-2026")
    task = make_task()
    for _ in range(2 * scale):
        make_drawing(status=Drawing.Status.FAILED, error="not a PDF")
    make_drawing(status=Drawing.Status.RENDERING)
    pending = [make_example(task=task, status=Example.Status.PENDING) for _ in range(3 * scale)]
    Example.objects.filter(pk=pending[0].pk).update(created_at=timezone.now() - datetime.timedelta(days=6))
    drifted = make_example(task=task, status=Example.Status.APPROVED, ground_truth_target='{"changed": true}')
    for example in pending[:scale]:
        decide(example, rita, "approved", days_ago=0)
        decide(example, rita, "rejected", days_ago=1)
    decide(drifted, rolf, "approved", days_ago=1)
    decide(drifted, rolf, "approved", days_ago=45)  # outside the last 30 days: not counted

    openai_model = make_base_model(
        "gpt-4o-mini-2024-07-18", price="3.00", shutdown_date=timezone.localdate() + datetime.timedelta(days=40)
    )
    ready = make_dataset_version(name="brackets", n_train=10, n_validation=2)
    blocked = make_dataset_version(
        name="shafts", n_train=3, n_validation=1, gates_passed=False, task=ready.dataset.task
    )
    now = timezone.now()
    running = TrainingRun.objects.create(
        dataset_version=blocked,
        base_model=openai_model,
        provider="openai",
        status="running",
        budget_usd=Decimal("5.00"),
        estimated_cost_usd=Decimal("7.50"),
        launched_at=now,
        resolved_hyperparameters={"n_epochs": 3, "batch_size": 1},  # 3 epochs of 3 train rows: 9 steps
    )
    RunMetric.objects.create(run=running, step=3, train_loss=0.5)
    DatasetBuild.objects.create(dataset=ready.dataset, status="running", done=5, total=20, stage="reading page images")
    ProductionImport.objects.create(source_name="times.csv", sha256="a" * 64, status="queued")
    succeeded = TrainingRun.objects.create(
        dataset_version=blocked,
        base_model=openai_model,
        provider="openai",
        status="succeeded",
        budget_usd=Decimal("20.00"),
        actual_cost_usd=Decimal("12.25"),
        launched_at=now,
        fine_tuned_model="ft:gpt-4o-mini-2024-07-18:shop::dash1",
        finished_at=now,
    )
    together = TrainingRun.objects.create(
        dataset_version=blocked,
        base_model=openai_model,
        provider="together",
        status="succeeded",
        actual_cost_usd=Decimal("3.00"),
        launched_at=now,
        finished_at=now,
    )
    for _ in range(scale - 1):  # older runs, evaluated: neither under way nor a next step
        old = TrainingRun.objects.create(
            dataset_version=blocked,
            base_model=openai_model,
            provider="openai",
            status="failed",
            launched_at=now - datetime.timedelta(days=70),
        )
        EvalRun.objects.create(
            task=task,
            model_name="m",
            dataset_version=blocked,
            training_run=old,
            prompt_kind="full",
            prompt_text="p",
            status="done",
            total=2,
            done_count=2,
            cost_usd=Decimal("0.5"),
            created_at=now,
        )
    EvalRun.objects.filter(model_name="m").update(created_at=now - datetime.timedelta(days=70))
    EvalRun.objects.create(
        task=task,
        model_name="ft:gpt-4o-mini-2024-07-18:shop::dash1",
        provider="openai",
        dataset_version=blocked,
        training_run=succeeded,
        prompt_kind="compact",
        prompt_text="p",
        status="running",
        total=40,
        done_count=12,
        error_count=1,
        cost_usd=Decimal("1.50"),
    )
    promoted_eval = EvalRun.objects.create(
        task=task,
        model_name="ft:gpt-4o-mini-2024-07-18:shop::dash1",
        provider="openai",
        dataset_version=blocked,
        training_run=succeeded,
        prompt_kind="compact",
        prompt_text="p",
        status="done",
        total=30,
        done_count=30,
        metrics={
            "numeric": {"operations[].machine_time_min_per_piece": {"mape": {"value": 0.123, "ci": [0.101, 0.146]}}}
        },
    )
    EvalRun.objects.filter(pk=promoted_eval.pk).update(created_at=now - datetime.timedelta(days=70))
    ModelVersion.objects.create(
        task=task,
        model_name=succeeded.fine_tuned_model,
        provider="openai",
        kind="fine_tuned",
        training_run=succeeded,
        eval_run=promoted_eval,
        is_active=True,
    )
    Estimate.objects.create(
        task=task,
        drawing=make_drawing(),
        model_name=succeeded.fine_tuned_model,
        provider="openai_ft",
        cost_usd=Decimal("0.25"),
    )
    return {
        "rita": rita,
        "rolf": rolf,
        "mara": mara,
        "task": task,
        "ready": ready,
        "blocked": blocked,
        "running": running,
        "succeeded": succeeded,
        "together": together,
        "pending": pending,
        "drifted": drifted,
    }


def grow_house(house: dict, *, n: int) -> None:
    """`n` more rows of every kind the dashboard reads: drawings failing and rendering, pending and drifted
    examples, decisions, exports, runs under way, succeeded runs to evaluate, eval runs, estimates."""
    now = timezone.now()
    task, blocked = house["task"], house["blocked"]
    run = house["running"]
    for i in range(n):
        make_drawing(status=Drawing.Status.FAILED if i % 2 else Drawing.Status.RENDERING)
        example = make_example(task=task, status=Example.Status.PENDING)
        decide(example, house["rolf" if i % 2 else "rita"], "needs_changes", days_ago=i % 30)
        make_example(task=task, status=Example.Status.APPROVED, ground_truth_target='{"changed": %d}' % i)
        version = make_dataset_version(name=f"grown-{i}", n_train=1, n_validation=0, gates_passed=i % 2 == 0)
        version.export_status = "running"
        version.save(update_fields=["export_status"])
        grown = TrainingRun.objects.create(
            dataset_version=blocked,
            base_model=run.base_model,
            provider="azure",
            status="running",
            budget_usd=Decimal("1.00"),
            launched_at=now,
        )
        RunMetric.objects.create(run=grown, step=1 + i, train_loss=1.0)
        DatasetBuild.objects.create(dataset=version.dataset, status="running", done=i, total=2 * n)
        ProductionImport.objects.create(source_name=f"grown-{i}.csv", sha256=f"{i:064d}", status="running")
        TrainingRun.objects.create(
            dataset_version=blocked,
            base_model=run.base_model,
            provider="openai",
            status="succeeded",
            actual_cost_usd=Decimal("1.00"),
            launched_at=now,
        )
        EvalRun.objects.create(
            task=task,
            model_name=f"m-{i}",
            provider="together",
            dataset_version=blocked,
            prompt_kind="full",
            prompt_text="p",
            status="queued",
            total=10,
        )
        Estimate.objects.create(
            task=task,
            drawing=house["pending"][0].drawing,
            model_name="m",
            provider="azure_ft",
            cost_usd=Decimal("0.01"),
        )
