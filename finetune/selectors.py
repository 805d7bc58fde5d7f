"""Reads more than one screen needs: a training run's hyperparameters, the run behind a model name, an eval run's
lineage, the examples an eval screen lists (with their drawings, one query per table), the train overlap of eval runs
and the lifecycles of a list's rows (one read of the base models).

The eval run page, the promotion report and the model card all show lineage from `eval_run_lineage`,
so they can never disagree about where a model came from.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from curation.models import DatasetMember, DrawingPage, Example, Task
from curation.provider_names import ProviderName
from curation.services.base_models import Lifecycle, base_models_by_name, lifecycle_today, model_lifecycle
from finetune.models import (
    EvalResult,
    EvalRun,
    ModelKind,
    ModelVersion,
    RunCheckpoint,
    RunEvent,
    RunMetric,
    TaskFallback,
    TrainingRun,
)


def training_run_hyperparameters(run: TrainingRun) -> dict:
    """The hyperparameters the run trained with: the provider's resolved values once the run stores them
    (`resolved_hyperparameters`, filled from the job), else the requested ones ("auto" where not set)."""
    resolved = getattr(run, "resolved_hyperparameters", None)
    if isinstance(resolved, dict) and resolved:
        return {**run.hyperparameters, **resolved}
    return dict(run.hyperparameters)


def training_run_for_model(model_name: str) -> tuple[TrainingRun | None, RunCheckpoint | None]:
    """The run that made a fine-tuned model or one of its checkpoints (by the name the provider gave it)."""
    if not model_name:
        return None, None
    run = TrainingRun.objects.filter(fine_tuned_model=model_name).order_by("-pk").first()
    if run is not None:
        return run, None
    checkpoint = (
        RunCheckpoint.objects.filter(fine_tuned_model_checkpoint=model_name)
        .select_related("run")
        .order_by("-pk")
        .first()
    )
    return (checkpoint.run, checkpoint) if checkpoint else (None, None)


def training_run_for_deployment(name: str) -> TrainingRun | None:
    """The run whose fine-tuned model is served by the Azure deployment of this name."""
    if not name:
        return None
    return TrainingRun.objects.filter(deployment_name=name).select_related("base_model").order_by("-pk").first()


def provider_for_model(model_name: str) -> str:
    """Which provider serves a model name: a fine-tuned model (or checkpoint, or deployment) one of our runs
    made → that run's provider; anything else → the configured default (openai with a key, else azure when
    configured, else dryrun; the same default a launch uses). Evaluations ask this, so an Azure-only install
    never sends a model to OpenAI."""
    from finetune.providers.base import default_provider_name

    run, _ = training_run_for_model(model_name)
    run = run or training_run_for_deployment(model_name)
    if run is not None and run.provider != ProviderName.DRYRUN:
        return run.provider
    return default_provider_name()


def _version(version) -> dict:
    return {"id": version.pk, "name": str(version), "content_hash": version.content_hash}


def eval_run_lineage(eval_run: EvalRun) -> dict:
    """Where the evaluated model came from: training run, the dataset version it trained on (with its
    content hash), base model, hyperparameters, checkpoint; and what the eval itself ran on.

    `role` is "fine_tuned" (the model the training run made, or a checkpoint of it), "baseline" (the base
    model evaluated beside a training run) or "standalone" (no training run linked).
    """
    run = eval_run.training_run
    lineage = {
        "role": "standalone",
        "evaluated_on": {**_version(eval_run.dataset_version), "split": eval_run.split},
        "training_run": None,
        "trained_on": None,
        "base_model": None,
        "hyperparameters": None,
        "checkpoint": None,
    }
    if eval_run.model_kind in (ModelKind.BASE, ModelKind.FEW_SHOT):  # a few-shot model is a model not fine-tuned
        lineage["base_model"] = eval_run.model_name
    if run is None:
        return lineage
    lineage["trained_on"] = _version(run.dataset_version)
    lineage["training_run"] = {
        "id": run.pk,
        "job_id": run.job_id or None,
        "provider": run.provider,
        "status": run.status,
        "fine_tuned_model": run.fine_tuned_model or None,
    }
    if eval_run.model_kind == ModelKind.BASE:
        lineage["role"] = "baseline"
        return lineage
    lineage.update(role="fine_tuned", base_model=run.base_model.name, hyperparameters=training_run_hyperparameters(run))
    if eval_run.model_name != run.fine_tuned_model:
        checkpoint = run.checkpoints.filter(fine_tuned_model_checkpoint=eval_run.model_name).first()
        if checkpoint is not None:
            lineage["checkpoint"] = {
                "model": checkpoint.fine_tuned_model_checkpoint,
                "step": checkpoint.step,
                "remote_id": checkpoint.remote_id,
            }
    return lineage


def lineage_lines(lineage: dict) -> list[tuple[str, str]]:
    """(label, text) rows of a lineage for the eval page, the commands and the model card."""
    rows = []
    run = lineage.get("training_run")
    if lineage["role"] == "fine_tuned":
        rows.append(("Base model", lineage["base_model"]))
        rows.append(("Training run", f"{run['id']} (job {run['job_id'] or '—'}, {run['provider']}, {run['status']})"))
        trained = lineage["trained_on"]
        rows.append(("Trained on", f"{trained['name']} (hash {trained['content_hash']})"))
        rows.append(
            (
                "Hyperparameters",
                ", ".join(f"{k}={v}" for k, v in (lineage["hyperparameters"] or {}).items()) or "provider defaults",
            )
        )
        checkpoint = lineage.get("checkpoint")
        rows.append(
            (
                "Checkpoint",
                f"{checkpoint['model']} (step {checkpoint['step']})" if checkpoint else "final model of the run",
            )
        )
    elif lineage["role"] == "baseline":
        rows.append(("Base model", f"{lineage['base_model']} (not fine-tuned)"))
        rows.append(("Baseline of", f"training run {run['id']} ({run['fine_tuned_model'] or 'no model yet'})"))
    else:
        rows.append(("Base model", lineage["base_model"] or "unknown (no training run linked)"))
    evaluated = lineage["evaluated_on"]
    rows.append(("Evaluated on", f"{evaluated['name']} (hash {evaluated['content_hash']}), split {evaluated['split']}"))
    return rows


# --- lifecycle of served models (curation's one rule, applied to the registry) -----------------


def _made_from(model_kind: str, training_run: TrainingRun | None) -> str:
    # A training run knows its base better than a name does (an Azure deployment may be called anything);
    # a base model evaluated beside a run was not made by it.
    if training_run is None or model_kind == ModelKind.BASE:
        return ""
    return training_run.base_model.name


def model_version_lifecycle(version: ModelVersion, *, base_models: dict | None = None) -> Lifecycle:
    """A registry version's dates: a fine-tuned model or checkpoint inherits its base's shutdown date."""
    return model_lifecycle(
        model_name=version.model_name, base_name=_made_from(version.kind, version.training_run), base_models=base_models
    )


def lifecycles_attach(rows, *, model_version: bool = True) -> None:
    """Set `row.lifecycle` on each row of a list page (model versions, or anything with a `model_name` such as
    task fallbacks) from one read of the base models, so a "serves until" column asks nothing per row."""
    base_models = base_models_by_name()
    for row in rows:
        row.lifecycle = (
            model_version_lifecycle(row, base_models=base_models)
            if model_version
            else model_lifecycle(model_name=row.model_name, base_models=base_models)
        )


def eval_run_lifecycle(eval_run: EvalRun) -> Lifecycle:
    return model_lifecycle(
        model_name=eval_run.model_name, base_name=_made_from(eval_run.model_kind, eval_run.training_run)
    )


def eval_run_mape(eval_run: EvalRun) -> float | None:
    """MAPE of the task's deciding numeric field (the one promotion decides on), or None."""
    from finetune.services.promotion import primary_numeric_path  # promotion imports this module (via model_cards)

    path = primary_numeric_path(eval_run.task)
    block = ((eval_run.metrics or {}).get("numeric") or {}).get(path) if path else None
    return ((block or {}).get("mape") or {}).get("value")


def replacement_candidates(*, task: Task, lifecycle: Lifecycle) -> list[dict]:
    """Models already evaluated on the task (done eval runs, latest per model) that serve longer than
    `lifecycle`'s model (a later shutdown date or none), best MAPE first."""
    runs = (
        EvalRun.objects.filter(task=task, status=EvalRun.Status.DONE)
        .exclude(model_name=lifecycle.model_name)
        .select_related("task", "training_run__base_model", "dataset_version__dataset")
        .order_by("-finished_at", "-pk")
    )
    candidates, seen = [], set()
    for run in runs:
        if run.model_name in seen:
            continue
        seen.add(run.model_name)
        own = eval_run_lifecycle(run)
        if not own.shuts_down_after(lifecycle):
            continue
        candidates.append(
            {
                "eval_run": run,
                "model_name": run.model_name,
                "provider": run.provider,
                "mape": eval_run_mape(run),
                "shutdown_date": own.shutdown_date,
                "dataset_version": run.dataset_version,
                "split": run.split,
            }
        )
    return sorted(candidates, key=lambda c: (c["mape"] is None, c["mape"] or 0.0))


def registry_shutdown_warnings(*, today: datetime.date | None = None) -> list[dict]:
    """Tasks whose active model stops serving within `MODEL_LIFECYCLE_WARNING_DAYS` (or already has): the date,
    the replacement candidates already evaluated and the task's fallback. The admin index and the registry page
    both show this list (one include), so they never disagree."""
    today = today or lifecycle_today()
    warnings = []
    active = (
        ModelVersion.objects.filter(is_active=True)
        .select_related("task", "training_run__base_model")
        .order_by("task__slug")
    )
    base_models = base_models_by_name()  # one read for every active version, not one per version
    for version in active:
        lifecycle = model_version_lifecycle(version, base_models=base_models)
        days = lifecycle.days_to_shutdown(today)
        if days is None or days > settings.MODEL_LIFECYCLE_WARNING_DAYS:
            continue
        fallback = TaskFallback.objects.filter(task=version.task).first()
        fallback_lifecycle = model_lifecycle(model_name=fallback.model_name) if fallback else None
        warnings.append(
            {
                "task": version.task,
                "version": version,
                "lifecycle": lifecycle,
                "days": days,
                "shut_down": lifecycle.is_shut_down(today),
                "candidates": replacement_candidates(task=version.task, lifecycle=lifecycle),
                "fallback": fallback,
                # A fallback that stops serving when the active model does (e.g. the base it was fine-tuned from) is
                # none.
                "fallback_shutdown_date": (
                    fallback_lifecycle.shutdown_date
                    if fallback_lifecycle and not fallback_lifecycle.shuts_down_after(lifecycle)
                    else None
                ),
            }
        )
    return warnings


# --- what eval screens list per example and per run (one query per table, never one per row) ----------------


def examples_with_drawings(*, ids) -> dict[int, Example]:
    """Examples by id with their drawing and its pages prefetched in page order, so a table of drawing cells
    (page 1 as a thumbnail) asks the database once, not once per row."""
    pages = Prefetch("drawing__pages", queryset=DrawingPage.objects.order_by("number"))
    return Example.objects.select_related("drawing").prefetch_related(pages).in_bulk(list(ids))


def eval_run_worst(*, eval_run: EvalRun) -> list[dict]:
    """The run's worst examples as its metrics list them, each with `example` (drawing prefetched) and the stored
    `result` (None where missing)."""
    worst = (eval_run.metrics or {}).get("worst") or []
    ids = [w["id"] for w in worst]
    if not ids:
        return []
    examples = examples_with_drawings(ids=ids)
    results = {r.example_id: r for r in EvalResult.objects.filter(eval_run=eval_run, example_id__in=ids)}
    return [{**w, "example": examples.get(w["id"]), "result": results.get(w["id"])} for w in worst]


def _train_overlap(version_ref, split_ref, trained_version_ref) -> QuerySet:
    evaluated = DatasetMember.objects.filter(version_id=version_ref, split=split_ref).values("example_id")
    return DatasetMember.objects.filter(
        version_id=trained_version_ref, split=DatasetMember.Split.TRAIN, example_id__in=evaluated
    )


def eval_run_train_overlap(eval_run: EvalRun) -> int:
    """How many of the evaluated examples were in the train split of the linked training run's dataset version
    (0 without a training run). `eval_runs_with_train_overlap` gives a list the same figure per row."""
    cached = getattr(eval_run, "train_overlap", None)
    if cached is not None:
        return cached
    run = eval_run.training_run
    if run is None:
        return 0
    return _train_overlap(eval_run.dataset_version_id, eval_run.split, run.dataset_version_id).count()


def eval_runs_with_train_overlap(queryset: QuerySet) -> QuerySet:
    """Eval runs annotated with `train_overlap` (see `eval_run_train_overlap`): the run list shows the leak
    warning of every row from this one query."""
    overlap = (
        _train_overlap(
            OuterRef(OuterRef("dataset_version_id")),
            OuterRef(OuterRef("split")),
            OuterRef("training_run__dataset_version_id"),
        )
        .order_by()
        .values("version_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return queryset.annotate(train_overlap=Coalesce(Subquery(overlap, output_field=IntegerField()), Value(0)))


def simulated_truth_index() -> dict:
    """{page image sha256: DrawingTruth} for the simulated provider (settings.SIMULATED_TRUTH_INDEX): the drawing
    task's targets and schema, read once per evaluation or estimate (the provider never touches the ORM)."""
    from curation.selectors import drawing_page_truths
    from curation.task_presets import DRAWING_TASK_SLUG
    from finetune.providers.simulated_answers import DrawingTruth

    task = Task.objects.filter(slug=DRAWING_TASK_SLUG).first()
    schema = task.output_schema if task is not None else {}
    return {
        row["page_sha256"]: DrawingTruth(
            key=row["drawing_sha256"],
            target=row["target"],
            schema=schema,
            hints={"part_number": row["part_number"], "material": row["material"]},
        )
        for row in drawing_page_truths(task=task)
    }


@dataclass(frozen=True)
class RunProgressFacts:
    """What `finetune.services.run_counts.run_count` reads beyond the run's own fields."""

    last_metric: RunMetric | None
    reported_total_steps: object  # as the provider sent it (or None)
    has_validation: bool


def runs_progress_facts(runs: list[TrainingRun]) -> None:
    """Attach `progress_facts` to each run, read in four queries whatever their number (the dashboard's runs), so
    `run_count` makes none per run."""
    if not runs:
        return
    last_metric = RunMetric.objects.filter(run=OuterRef("pk")).order_by("-step").values("pk")[:1]
    total_event = (
        RunEvent.objects.filter(run=OuterRef("pk"), data__has_key="total_steps")
        .order_by("-created_at_remote", "-id")
        .values("pk")[:1]
    )
    rows = list(
        TrainingRun.objects.filter(pk__in=[run.pk for run in runs])
        .annotate(metric_id=Subquery(last_metric), event_id=Subquery(total_event))
        .values_list("pk", "metric_id", "event_id")
    )
    metrics = RunMetric.objects.in_bulk([m for _, m, _ in rows if m])
    totals = dict(RunEvent.objects.filter(pk__in=[e for _, _, e in rows if e]).values_list("pk", "data"))
    with_validation = set(
        DatasetMember.objects.filter(
            version_id__in={run.dataset_version_id for run in runs}, split=DatasetMember.Split.VALIDATION
        )
        .values_list("version_id", flat=True)
        .distinct()
    )
    found = {pk: (metric_id, event_id) for pk, metric_id, event_id in rows}
    for run in runs:
        metric_id, event_id = found.get(run.pk, (None, None))
        run.progress_facts = RunProgressFacts(
            last_metric=metrics.get(metric_id),
            reported_total_steps=(totals.get(event_id) or {}).get("total_steps"),
            has_validation=run.dataset_version_id in with_validation,
        )
