"""Training runs, step 1: a draft with its cost estimate, the checks a launch must pass (refusals, gates,
budget, duplicates, each confirmed with a reason where allowed), and the launch itself.

The launch moves the row draft → uploading with a conditional update (one winner), under a row lock, and
enqueues the start job (finetune.jobs, by dotted path) after commit; run_start.py does the rest.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from curation.provider_names import ProviderName
from curation.models import BaseModel, DatasetMember, DatasetVersion
from curation.services.base_models import base_model_lifecycle, lifecycle_today
from curation.services.dataset_costs import TrainingCost, dataset_version_training_cost
from finetune.models import TrainingRun
from finetune.providers.base import ProviderError, default_provider_name, get_provider
from finetune.providers.fine_tuning import RUN_ID_KEY
from finetune.services.hyperparameters import HyperparameterInvalid, hyperparameter_check
from finetune.services.run_state import TrainingRunError, run_permission_check, run_timeline
from gestima.queues import enqueue_on_commit

S = TrainingRun.Status
START_JOB = "finetune.jobs.training_run_start_job"
START_FAILED_HOOK = "finetune.jobs.training_run_start_failed"
START_QUEUE = "openai"


def start_job_id(run_id: int) -> str:
    """The start job's id: one waiting or running per run (enqueue_on_commit sends no second one)."""
    return f"training-run-start-{run_id}"


def _hyperparameter(*, name: str, value) -> str:
    # The one range check (finetune/services/hyperparameters.py), as the run form applies it.
    try:
        return hyperparameter_check(name=name, value=value)
    except HyperparameterInvalid as exc:
        raise TrainingRunError(str(exc)) from None


def run_metadata(run: TrainingRun) -> dict[str, str]:
    """What the remote job carries: our run id (to find it again) and the dataset version it trains on."""
    version = run.dataset_version
    return {
        RUN_ID_KEY: str(run.pk),
        "gestima_dataset_version": str(version.pk),
        "gestima_dataset_hash": (version.content_hash or "")[:64],
    }


def training_run_epochs(run: TrainingRun) -> int:
    """The epochs the estimate assumes: the run's own, or with "auto" the dataset's epoch count."""
    epochs = run.hyperparameters["n_epochs"]
    if epochs == TrainingRun.AUTO:
        epochs = run.dataset_version.dataset.epochs or 1
    return int(epochs)


def training_run_cost(*, run: TrainingRun) -> TrainingCost:
    """The run's estimate from curation's one cost function (the dataset page shows the same figure):
    the train split as this base model counts it (its encoding and image scheme) × epochs × its price,
    plus the validation passes its provider bills (Together; OpenAI bills none)."""
    has_validation = run.dataset_version.members.filter(split=DatasetMember.Split.VALIDATION).exists()
    passes = get_provider(run.provider).validation_passes(
        options=run.provider_options or {}, has_validation=has_validation
    )
    return dataset_version_training_cost(
        version=run.dataset_version,
        base_model=run.base_model,
        epochs=training_run_epochs(run),
        validation_passes=passes,
    )


def training_run_estimate(*, run: TrainingRun) -> tuple[int, Decimal | None]:
    """Billed training tokens and their cost in USD (None when the base model's price is not known)."""
    cost = training_run_cost(run=run)
    return cost.billed_tokens, cost.usd


def training_run_launch_refusals(*, run: TrainingRun) -> list[str]:
    """Why a launch is refused whatever the override: the provider would reject the job anyway."""
    refusals = []
    problem = training_run_cost(run=run).problem
    if problem:
        refusals.append(
            f"{run.base_model.name}: {problem}, and {run.dataset_version} has images; choose a base model "
            "that does (see the dataset page's cost table)"
        )
    lifecycle = base_model_lifecycle(run.base_model)
    if lifecycle.jobs_ended() and run.provider != ProviderName.DRYRUN:
        refusals.append(
            f"{run.base_model.name} accepts no new fine-tuning jobs after "
            f"{lifecycle.jobs_end_date:%Y-%m-%d} (its jobs-end date; today is "
            f"{lifecycle_today():%Y-%m-%d}): the {run.provider} provider would "
            'refuse the job; choose another base model or provider (see "When OpenAI fine-tuning ends" '
            "in the README)"
        )
    return refusals


def training_run_over_budget(*, run: TrainingRun, cost: TrainingCost | None = None) -> bool:
    """The budget rule, in one place: a known estimate above the run's budget (an unknown price is its own
    problem, see training_run_launch_problems). `cost` defaults to the estimate stored on the run."""
    usd = cost.usd if cost is not None else run.estimated_cost_usd
    return run.budget_usd is not None and usd is not None and usd > run.budget_usd


def training_run_launch_problems(*, run: TrainingRun) -> list[str]:
    """Why a launch would be refused without an override (empty: it may go); refusals come first."""
    problems = training_run_launch_refusals(run=run)
    version = run.dataset_version
    if not version.gates_passed:
        failed = [g.get("message") or g.get("name", "?") for g in (version.gates or []) if not g.get("passed")]
        problems.append("dataset gates fail" + (": " + "; ".join(failed) if failed else ""))
    if training_run_over_budget(run=run):
        problems.append(f"estimated cost ${run.estimated_cost_usd:.2f} is over the budget ${run.budget_usd:.2f}")
    if run.budget_usd is not None and run.estimated_cost_usd is None:
        problems.append(
            f"the training price of {run.base_model.name} is not known, so the budget "
            f"${run.budget_usd:.2f} cannot be checked (enter the price in Base models)"
        )
    return problems


def training_run_duplicates(*, run: TrainingRun) -> list[TrainingRun]:
    """Paid runs that train the same thing: same dataset version, base model, provider, method, hyperparameters
    and seed, still active or succeeded. A second one is a second bill, so a launch needs it confirmed."""
    if run.provider == ProviderName.DRYRUN:
        return []
    same = (
        TrainingRun.objects.filter(
            dataset_version_id=run.dataset_version_id,
            base_model_id=run.base_model_id,
            provider=run.provider,
            method=run.method,
            n_epochs=run.n_epochs,
            batch_size=run.batch_size,
            learning_rate_multiplier=run.learning_rate_multiplier,
            seed=run.seed,
        )
        .exclude(pk=run.pk)
        .exclude(status=S.DRAFT)
    )
    return [other for other in same.order_by("id") if other.status == S.SUCCEEDED or not other.is_terminal]


def _duplicates_text(duplicates: list[TrainingRun]) -> str:
    return ", ".join(f"run {other.pk} ({other.status_label})" for other in duplicates)


# --- create / launch ---------------------------------------------------------------------------


def training_run_create(
    *,
    dataset_version: DatasetVersion,
    base_model: BaseModel,
    user,
    provider: str = "",
    n_epochs="auto",
    batch_size="auto",
    learning_rate_multiplier="auto",
    suffix: str = "",
    seed: int | None = None,
    budget_usd: Decimal | None = None,
    relaunched_from: TrainingRun | None = None,
    training_file_id: str = "",
    validation_file_id: str = "",
    provider_options: dict | None = None,
) -> TrainingRun:
    """A draft run with its cost estimate; nothing is sent anywhere until it is launched."""
    provider = provider or default_provider_name()
    try:
        provider_obj = get_provider(provider)
        provider_options = provider_obj.options_check(provider_options or {})
    except ProviderError as exc:
        raise TrainingRunError(exc.message)
    if provider_obj.trains_models_of is not None and base_model.provider not in provider_obj.trains_models_of:
        raise TrainingRunError(
            f"{base_model.name} is a base model of {base_model.provider}: the {provider} provider "
            f"cannot train it (choose a {' or '.join(sorted(provider_obj.trains_models_of))} "
            f"model, or the provider {base_model.provider})."
        )
    if n_epochs in (None, "", TrainingRun.AUTO) and not provider_obj.auto_epochs:
        # The provider has no "auto": the run gets what the estimate assumes, the dataset's epochs.
        n_epochs = dataset_version.dataset.epochs or 1
    suffix = (suffix or "").strip()
    if len(suffix) > 64:
        raise TrainingRunError(f"The suffix has {len(suffix)} characters; the provider allows at most 64.")
    run = TrainingRun(
        dataset_version=dataset_version,
        base_model=base_model,
        provider=provider,
        n_epochs=_hyperparameter(name="n_epochs", value=n_epochs),
        batch_size=_hyperparameter(name="batch_size", value=batch_size),
        learning_rate_multiplier=_hyperparameter(name="learning_rate_multiplier", value=learning_rate_multiplier),
        suffix=suffix,
        seed=seed,
        budget_usd=budget_usd,
        relaunched_from=relaunched_from,
        training_file_id=training_file_id,
        validation_file_id=validation_file_id,
        provider_options=provider_options or {},
        created_by=user if (user is not None and user.is_authenticated) else None,
    )
    run.estimated_tokens, run.estimated_cost_usd = training_run_estimate(run=run)
    run.timeline = [{"status": S.DRAFT, "at": timezone.now().isoformat()}]
    run.save()
    return run


def training_run_launch(
    *, run: TrainingRun, user, override_reason: str = "", allow_duplicate: bool = False, duplicate_reason: str = ""
) -> TrainingRun:
    """Send the run: refused while gates fail or the estimate is over budget, unless overridden with a reason.

    A second launch of the same run (double click, two managers) finds it no longer a draft and is refused.
    A run identical to one active or succeeded (`training_run_duplicates`) is refused unless the duplicate is
    confirmed (`allow_duplicate`) with a reason, which goes on the timeline.
    """
    run_permission_check(user)
    reason = (override_reason or "").strip()
    duplicate_reason = (duplicate_reason or "").strip()
    with transaction.atomic():
        run = (
            TrainingRun.objects.select_for_update()
            .select_related("dataset_version__dataset", "base_model")
            .get(pk=run.pk)
        )
        if run.status != S.DRAFT:
            raise TrainingRunError(
                f"Run {run.pk} was already launched (status: {run.status_label}); no second job is made."
            )
        run.estimated_tokens, run.estimated_cost_usd = training_run_estimate(run=run)
        refusals = training_run_launch_refusals(run=run)
        if refusals:
            raise TrainingRunError("Launch refused: " + "; ".join(refusals) + ". No override can change this.")
        problems = training_run_launch_problems(run=run)
        if problems and not reason:
            raise TrainingRunError(
                "Launch refused: "
                + "; ".join(problems)
                + ". A Manager may override this with a reason, which is recorded."
            )
        duplicates = training_run_duplicates(run=run)
        note = "launched"
        if duplicates:
            if not allow_duplicate:
                raise TrainingRunError(
                    f"Launch refused: {_duplicates_text(duplicates)} already trains the same dataset version, model "
                    "and hyperparameters; a second launch is a second paid job. Confirm the duplicate with a reason "
                    "(the checkbox on the launch page, or launch_run --allow-duplicate)."
                )
            if not duplicate_reason:
                raise TrainingRunError(
                    "Say why the duplicate of "
                    + _duplicates_text(duplicates)
                    + " is wanted: the reason is recorded on the run's timeline."
                )
            who = getattr(user, "username", "") or "the shell"
            note = f"launched as a confirmed duplicate of {_duplicates_text(duplicates)} by {who}: {duplicate_reason}"
        fields = {
            "status": S.UPLOADING,
            "timeline": run_timeline(run, S.UPLOADING, note=note),
            "launched_at": timezone.now(),
            "metadata": run_metadata(run),
            "estimated_tokens": run.estimated_tokens,
            "estimated_cost_usd": run.estimated_cost_usd,
            "updated_at": timezone.now(),
        }
        if problems:
            fields.update(
                override=True,
                override_reason=f"{reason} (overrode: {'; '.join(problems)})",
                override_by=user if user is not None else None,
            )
        # The conditional update is the claim (the row lock alone does nothing on SQLite).
        if TrainingRun.objects.filter(pk=run.pk, status=S.DRAFT).update(**fields) != 1:
            raise TrainingRunError(f"Run {run.pk} was launched by someone else at the same moment.")
        training_run_enqueue_start(run=run)
    run.refresh_from_db()
    return run


def training_run_enqueue_start(*, run: TrainingRun) -> None:
    from rq import Callback

    enqueue_on_commit(
        START_QUEUE, START_JOB, run.pk, job_id=start_job_id(run.pk), on_failure=Callback(START_FAILED_HOOK)
    )
