"""Training runs: cancel one (remotely when its job exists, here when it does not) and relaunch a finished one."""

from __future__ import annotations

from django.utils import timezone

from finetune.models import TrainingRun
from finetune.providers.base import ProviderError, get_provider
from finetune.services.run_launch import training_run_create
from finetune.services.run_state import TrainingRunError, run_permission_check, run_timeline
from finetune.services.run_sync import run_job_apply

S = TrainingRun.Status


def training_run_cancel(*, run: TrainingRun, user) -> TrainingRun:
    """Cancel remotely (the provider's answer sets the status); a run with no job yet is cancelled here."""
    run_permission_check(user)
    run = TrainingRun.objects.select_related("base_model").get(pk=run.pk)
    if run.is_terminal:
        raise TrainingRunError(f"Run {run.pk} has already finished ({run.status_label}).")
    if not run.job_id:
        note = "cancelled before a job existed"
        done = (
            TrainingRun.objects.filter(pk=run.pk, job_id__isnull=True)
            .exclude(status__in=S.TERMINAL)
            .update(status=S.CANCELLED, timeline=run_timeline(run, S.CANCELLED, note=note), finished_at=timezone.now())
        )
        run.refresh_from_db()
        if done or not run.job_id:
            return run
    provider = get_provider(run.provider)
    try:
        job = provider.cancel_job(run.job_id)
    except ProviderError as exc:
        raise TrainingRunError(f"The provider refused the cancel: {exc.message}")
    return run_job_apply(run, job, note="cancelled by user")


def training_run_relaunch(*, run: TrainingRun, user) -> TrainingRun:
    """A new draft run with the same settings that reuses the files already uploaded (no upload again)."""
    run_permission_check(user)
    if not run.is_terminal:
        raise TrainingRunError(f"Run {run.pk} is still {run.status_label}; cancel it before relaunching.")
    return training_run_create(
        dataset_version=run.dataset_version,
        base_model=run.base_model,
        user=user,
        provider=run.provider,
        n_epochs=run.n_epochs,
        batch_size=run.batch_size,
        learning_rate_multiplier=run.learning_rate_multiplier,
        suffix=run.suffix,
        seed=run.seed,
        budget_usd=run.budget_usd,
        relaunched_from=run,
        training_file_id=run.training_file_id,
        validation_file_id=run.validation_file_id,
        provider_options=run.provider_options,
    )
