"""The demo's whole loop on the simulated provider (no API key): a run launched and synced, its base and fine-tuned
models evaluated, the better one promoted, so the dashboard, run page, evaluations, comparison, registry and
estimates all have something to show. Glue of both apps (curation's demo data, finetune's services), hence here.

The services run here, in the command, rather than waiting for the worker: `./dev run` starts the worker after the
demo data, and a newcomer should find a finished run at once. The jobs they enqueue find the work done (each claims
its row by status) and return.
"""

from __future__ import annotations

from django.contrib.auth.models import User

from curation.demo.load import DEMO_DATASET, DemoReport
from curation.models import BaseModel, DatasetVersion
from curation.provider_names import ProviderName
from finetune.models import EvalRun, ModelKind, ModelVersion, TrainingRun

# The shop's usual choice: a small vision model that OpenAI still fine-tunes.
DEMO_BASE_MODEL = "gpt-4.1-mini-2025-04-14"


def demo_loop_load(report: DemoReport) -> TrainingRun | None:
    """Launch, sync, evaluate and promote one simulated run on the demo dataset; a second call changes nothing."""
    from finetune.providers.simulated import simulated_enabled
    from finetune.services.eval_execute import eval_run_execute
    from finetune.services.evals import training_run_evaluate
    from finetune.services.promotion import PromotionRefused, model_version_promote, promotion_checks
    from finetune.services.run_launch import training_run_create, training_run_launch
    from finetune.services.run_start import training_run_start
    from finetune.services.run_sync import training_run_sync

    if not simulated_enabled():
        report.say("simulated provider: off (GESTIMA_SIMULATED_PROVIDER): no demo training run")
        return None
    version = (
        DatasetVersion.objects.filter(dataset__name=DEMO_DATASET, dataset__task__demo=True, gates_passed=True)
        .select_related("dataset__task")
        .order_by("-number")
        .first()
    )
    base_model = BaseModel.objects.filter(name=DEMO_BASE_MODEL).first()
    if version is None or base_model is None:
        report.say("simulated provider: no demo dataset version passing the gates (or no base model): no run")
        return None
    run = TrainingRun.objects.filter(dataset_version=version, provider=ProviderName.SIMULATED).order_by("pk").first()
    if run is None:
        run = training_run_create(
            dataset_version=version, base_model=base_model, user=None, provider=ProviderName.SIMULATED, suffix="demo"
        )
        run = training_run_launch(run=run, user=None)
        training_run_start(run_id=run.pk)
    run = training_run_sync(run=run)
    if run.status != TrainingRun.Status.SUCCEEDED:
        report.say(
            f"simulated run {run.pk}: {run.status_label} ({run.error_message or run.sync_error or 'see its page'})"
        )
        return run
    eval_runs, _ = training_run_evaluate(run=run)
    for eval_run in eval_runs:
        if eval_run.status == EvalRun.Status.QUEUED:
            eval_run_execute(eval_run=eval_run)
    eval_runs = [EvalRun.objects.get(pk=e.pk) for e in eval_runs]
    report.say(
        f"simulated run {run.pk}: {run.fine_tuned_model}, evaluated by eval runs "
        f"{', '.join(str(e.pk) for e in eval_runs)} (marked Simulated on every page)"
    )
    fine_tuned = next((e for e in eval_runs if e.model_kind == ModelKind.FINE_TUNED), None)
    admin = User.objects.filter(username="admin", is_superuser=True).first()
    if fine_tuned is None or admin is None or ModelVersion.objects.filter(task=version.dataset.task).exists():
        return run
    checks, _ = promotion_checks(eval_run=fine_tuned)
    if not all(c["passed"] for c in checks):
        report.say("the simulated fine-tuned model does not pass the promotion policy: promote it from its eval page")
        return run
    try:
        promoted = model_version_promote(eval_run=fine_tuned, user=admin)
    except PromotionRefused as exc:
        report.say(f"promotion refused: {exc}")
        return run
    report.say(f"promoted {promoted.model_name} (simulated) for task {promoted.task.slug}: estimates answer with it")
    _demo_estimates(report, version=version, user=admin)
    return run


DEMO_ESTIMATES = 3


def _demo_estimates(report: DemoReport, *, version: DatasetVersion, user) -> None:
    """A few estimates by the promoted simulated model, of validation drawings whose parts have production
    records, scored against them at once: the estimate pages and the live accuracy have something to show."""
    from curation.models import Drawing, GroundTruth
    from finetune.services.estimate_scores import estimates_score_stale
    from finetune.services.estimates import EstimateError, estimate_create

    task = version.dataset.task
    measured = GroundTruth.objects.values_list("part_number", flat=True)
    drawings = Drawing.objects.filter(
        examples__memberships__version=version,
        examples__memberships__split="validation",
        part_number__in=measured,
    ).distinct()[:DEMO_ESTIMATES]
    made = 0
    for drawing in drawings:
        try:
            estimate_create(drawing=drawing, task=task, user=user)
            made += 1
        except EstimateError as exc:
            report.say(f"demo estimate of {drawing.part_number} refused: {exc}")
    scored = estimates_score_stale().scored if made else 0
    report.say(f"{made} demo estimate(s) by the simulated model, {scored} scored against production records")
