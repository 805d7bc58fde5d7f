"""Deployments: on Azure a fine-tuned model answers only through a named deployment, billed per hour while it exists.

A succeeded Azure run gets a deployment step: created here through Azure's management API when its
settings are given (`training_run_deploy`, then a job waits for provisioningState Succeeded), or the
name of one made in the portal is recorded (`training_run_deployment_record`). Eval runs and estimates
then call the deployment name (`EvalRun.deployment_name`, `ModelVersion.deployment_name`).
"""

from __future__ import annotations

import logging
import re
import time
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.utils import timezone

from finetune.models import TrainingRun
from finetune.providers.base import ProviderError, get_provider
from finetune.services.run_state import TrainingRunError, run_permission_check, run_progress
from gestima.queues import enqueue_on_commit

logger = logging.getLogger(__name__)

WAIT_JOB = "finetune.jobs.training_run_deployment_wait_job"
RECORDED = "Recorded"
# Azure's rule for deployment names: letters, digits, '-', '_', '.'; at most 64 characters.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def deployment_hourly_usd() -> Decimal | None:
    """Hosting price of one deployment per hour (AZURE_DEPLOYMENT_HOURLY_USD), or None: unknown, never $0."""
    raw = str(getattr(settings, "AZURE_DEPLOYMENT_HOURLY_USD", "") or "").strip()
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        logger.warning("AZURE_DEPLOYMENT_HOURLY_USD=%r is not a number; hosting cost shown as unknown", raw)
        return None
    return value if value > 0 else None


def deployment_needed(run: TrainingRun) -> bool:
    """A succeeded run whose model answers only through a deployment."""
    try:
        provider = get_provider(run.provider)
    except ProviderError:
        return False
    return (
        bool(getattr(provider, "needs_deployment", False))
        and run.status == TrainingRun.Status.SUCCEEDED
        and bool(run.fine_tuned_model)
    )


def deployment_management_missing(run: TrainingRun) -> list[str]:
    """Settings missing to create the run's deployment from here ([]: the Create button works)."""
    provider = get_provider(run.provider)
    missing = getattr(provider, "management_missing", None)
    return missing() if missing else ["a provider with deployments"]


def default_deployment_name(run: TrainingRun) -> str:
    return f"gestima-run-{run.pk}"


def _checked(run: TrainingRun, name: str) -> tuple[TrainingRun, str]:
    run = TrainingRun.objects.select_related("base_model").get(pk=run.pk)
    if not deployment_needed(run):
        raise TrainingRunError(
            f"Run {run.pk} ({run.provider}, {run.status_label}) needs no deployment: only a "
            "succeeded run on a provider that serves fine-tuned models through deployments (Azure)."
        )
    name = (name or "").strip() or default_deployment_name(run)
    if not NAME_RE.match(name):
        raise TrainingRunError(f"{name!r} is not a valid deployment name (letters, digits, '-', '_', '.'; at most 64).")
    return run, name


def training_run_deploy(*, run: TrainingRun, user, name: str = "") -> TrainingRun:
    """Create the deployment through Azure's management API (PUT, standard SKU, capacity 1), then a job waits
    for it to be provisioned. Refused with the reason when management is not configured."""
    run_permission_check(user)
    run, name = _checked(run, name)
    if run.deployment_state in ("Creating", "Succeeded", RECORDED) and run.deployment_name:
        raise TrainingRunError(f"Run {run.pk} already has deployment {run.deployment_name} ({run.deployment_state}).")
    provider = get_provider(run.provider)
    try:
        state = provider.create_deployment(name=name, model=run.fine_tuned_model)
    except ProviderError as exc:
        TrainingRun.objects.filter(pk=run.pk).update(deployment_error=exc.message)
        raise TrainingRunError(exc.message)
    TrainingRun.objects.filter(pk=run.pk).update(deployment_name=name, deployment_state=state, deployment_error="")
    run.refresh_from_db()
    run = run_progress(run, f"deployment {name} requested ({state})")
    if state != "Succeeded":
        enqueue_on_commit("openai", WAIT_JOB, run.pk, job_id=f"training-run-deployment-{run.pk}")
    return run


def training_run_deployment_wait(*, run_id: int) -> TrainingRun:
    """Poll the deployment's provisioningState until Succeeded or Failed, at most AZURE_DEPLOYMENT_WAIT_SECONDS."""
    run = TrainingRun.objects.get(pk=run_id)
    if not run.deployment_name or run.deployment_state in ("Succeeded", "Failed", RECORDED):
        return run
    provider = get_provider(run.provider)
    deadline = time.monotonic() + settings.AZURE_DEPLOYMENT_WAIT_SECONDS
    while True:
        try:
            state = provider.deployment_state(run.deployment_name)
        except ProviderError as exc:
            if not exc.retryable:
                TrainingRun.objects.filter(pk=run.pk).update(deployment_state="Failed", deployment_error=exc.message)
                run.refresh_from_db()
                return run
            state = run.deployment_state
        if state != run.deployment_state:
            TrainingRun.objects.filter(pk=run.pk).update(deployment_state=state, updated_at=timezone.now())
            run.refresh_from_db()
        if state in ("Succeeded", "Failed", "Canceled"):
            return run_progress(run, f"deployment {run.deployment_name}: {state}")
        if time.monotonic() >= deadline:
            TrainingRun.objects.filter(pk=run.pk).update(
                deployment_error=f"still {state} after {settings.AZURE_DEPLOYMENT_WAIT_SECONDS} s; check the portal, "
                "then record the deployment when it serves"
            )
            run.refresh_from_db()
            return run
        time.sleep(settings.AZURE_DEPLOYMENT_POLL_SECONDS)


def training_run_deployment_record(*, run: TrainingRun, user, name: str) -> TrainingRun:
    """Record the name of a deployment made in the portal: eval runs and estimates of the run's model use it."""
    run_permission_check(user)
    if not (name or "").strip():
        raise TrainingRunError("Give the deployment's name as the portal shows it.")
    run, name = _checked(run, name)
    TrainingRun.objects.filter(pk=run.pk).update(deployment_name=name, deployment_state=RECORDED, deployment_error="")
    run.refresh_from_db()
    return run_progress(run, f"deployment {name} recorded (made in the portal)")
