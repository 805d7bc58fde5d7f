"""Reads more than one screen needs: a training run's hyperparameters, the run behind a model name, an eval run's lineage.

The eval run page, the promotion report and the model card all show lineage from `eval_run_lineage`,
so they can never disagree about where a model came from.
"""
from __future__ import annotations

from finetune.models import EvalRun, ModelKind, RunCheckpoint, TrainingRun


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
    checkpoint = (RunCheckpoint.objects.filter(fine_tuned_model_checkpoint=model_name).select_related("run")
                  .order_by("-pk").first())
    return (checkpoint.run, checkpoint) if checkpoint else (None, None)


def _version(version) -> dict:
    return {"id": version.pk, "name": str(version), "content_hash": version.content_hash}


def eval_run_lineage(eval_run: EvalRun) -> dict:
    """Where the evaluated model came from: training run, the dataset version it trained on (with its
    content hash), base model, hyperparameters, checkpoint; and what the eval itself ran on.

    `role` is "fine_tuned" (the model the training run made, or a checkpoint of it), "baseline" (the base
    model evaluated beside a training run) or "standalone" (no training run linked).
    """
    run = eval_run.training_run
    lineage = {"role": "standalone", "evaluated_on": {**_version(eval_run.dataset_version), "split": eval_run.split},
               "training_run": None, "trained_on": None, "base_model": None, "hyperparameters": None,
               "checkpoint": None}
    if eval_run.model_kind in (ModelKind.BASE, ModelKind.FEW_SHOT):  # a few-shot model is a model not fine-tuned
        lineage["base_model"] = eval_run.model_name
    if run is None:
        return lineage
    lineage["trained_on"] = _version(run.dataset_version)
    lineage["training_run"] = {"id": run.pk, "job_id": run.job_id or None, "provider": run.provider,
                               "status": run.status, "fine_tuned_model": run.fine_tuned_model or None}
    if eval_run.model_kind == ModelKind.BASE:
        lineage["role"] = "baseline"
        return lineage
    lineage.update(role="fine_tuned", base_model=run.base_model.name, hyperparameters=training_run_hyperparameters(run))
    if eval_run.model_name != run.fine_tuned_model:
        checkpoint = run.checkpoints.filter(fine_tuned_model_checkpoint=eval_run.model_name).first()
        if checkpoint is not None:
            lineage["checkpoint"] = {"model": checkpoint.fine_tuned_model_checkpoint, "step": checkpoint.step,
                                     "remote_id": checkpoint.remote_id}
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
        rows.append(("Hyperparameters", ", ".join(f"{k}={v}" for k, v in (lineage["hyperparameters"] or {}).items())
                     or "provider defaults"))
        checkpoint = lineage.get("checkpoint")
        rows.append(("Checkpoint", f"{checkpoint['model']} (step {checkpoint['step']})" if checkpoint
                     else "final model of the run"))
    elif lineage["role"] == "baseline":
        rows.append(("Base model", f"{lineage['base_model']} (not fine-tuned)"))
        rows.append(("Baseline of", f"training run {run['id']} ({run['fine_tuned_model'] or 'no model yet'})"))
    else:
        rows.append(("Base model", lineage["base_model"] or "unknown (no training run linked)"))
    evaluated = lineage["evaluated_on"]
    rows.append(("Evaluated on", f"{evaluated['name']} (hash {evaluated['content_hash']}), split {evaluated['split']}"))
    return rows
