"""The run page's buttons: launch after a confirmation page, sync, cancel, relaunch, evaluate, deploy, record a
deployment, and the live JSON the page polls.

Views are functions of the TrainingRunAdmin (wired in its get_urls); every button is a thin call to
finetune/services/run_*.py, and rule violations come back as messages, never 500s.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from curation.services.base_models import base_model_date_warning
from finetune.charts import training_run_charts
from finetune.models import TrainingRun
from finetune.providers.base import ProviderError
from finetune.services import deployments as deployment_services
from finetune.services.evals import EvalError, training_run_evaluate
from finetune.services.run_cancel import training_run_cancel, training_run_relaunch
from finetune.services.run_counts import run_count
from finetune.services.run_launch import (
    training_run_cost,
    training_run_duplicates,
    training_run_launch,
    training_run_launch_problems,
    training_run_launch_refusals,
    training_run_over_budget,
)
from finetune.services.run_state import TrainingRunError
from finetune.services.run_sync import training_run_sync
from gestima.live import live_refused, live_response, live_state
from gestima.queues import QueueUnavailable


def run_get(model_admin, request, object_id) -> TrainingRun:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    return get_object_or_404(TrainingRun.objects.select_related("dataset_version__dataset", "base_model"), pk=object_id)


def _run_page(run):
    return HttpResponseRedirect(reverse("admin:finetune_trainingrun_change", args=[run.pk]))


def _button_post(model_admin, request, object_id, *, allowed: bool):
    """(run, response) for a run-page button: 403 without its permission, a GET goes back to the run page
    (response set), a POST goes on (response None)."""
    run = run_get(model_admin, request, object_id)
    if not allowed:
        raise PermissionDenied
    return run, (None if request.method == "POST" else _run_page(run))


def launch_view(model_admin, request, object_id):
    run = run_get(model_admin, request, object_id)
    if not model_admin.has_launch_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        reason = request.POST.get("override_reason", "") if request.POST.get("override") else ""
        try:
            run = training_run_launch(
                run=run,
                user=request.user,
                override_reason=reason,
                allow_duplicate=bool(request.POST.get("allow_duplicate")),
                duplicate_reason=request.POST.get("duplicate_reason", ""),
            )
        except (TrainingRunError, QueueUnavailable) as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
            run.refresh_from_db()
            if run.status == TrainingRun.Status.DRAFT:  # refused: back to the confirmation page
                return HttpResponseRedirect(request.path)
            return _run_page(run)  # launched meanwhile (a second click) or queued later
        model_admin.message_user(request, f"Run {run.pk} launched: uploading in the background.", messages.SUCCESS)
        return _run_page(run)
    if run.status != TrainingRun.Status.DRAFT:
        model_admin.message_user(request, f"Run {run.pk} was already launched ({run.status_label}).", messages.WARNING)
        return _run_page(run)
    cost = training_run_cost(run=run)
    refusals = training_run_launch_refusals(run=run)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"Launch run {run.pk}?",
        "run": run,
        "version": run.dataset_version,
        "gates": run.dataset_version.gates or [],
        "cost": cost,
        "over_budget": training_run_over_budget(run=run, cost=cost),
        "refusals": refusals,
        "problems": [p for p in training_run_launch_problems(run=run) if p not in refusals],
        "duplicates": training_run_duplicates(run=run),
        "model_warning": base_model_date_warning(run.base_model),
        "dry_run": run.provider == "dryrun",
    }
    return TemplateResponse(request, "admin/finetune/trainingrun/launch_confirm.html", context)


def sync_view(model_admin, request, object_id):
    run = run_get(model_admin, request, object_id)
    if request.method != "POST":
        return _run_page(run)
    try:
        run = training_run_sync(run=run)
    except ProviderError as exc:
        model_admin.message_user(request, f"Sync failed: {exc.message}", messages.ERROR)
        return _run_page(run)
    level = messages.WARNING if run.sync_error else messages.SUCCESS
    model_admin.message_user(
        request,
        f"Run {run.pk} synced: {run.status_label}." + (f" {run.sync_error}" if run.sync_error else ""),
        level,
    )
    return _run_page(run)


def cancel_view(model_admin, request, object_id):
    run = run_get(model_admin, request, object_id)
    if not model_admin.has_launch_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        try:
            run = training_run_cancel(run=run, user=request.user)
        except (TrainingRunError, ProviderError) as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        else:
            model_admin.message_user(request, f"Run {run.pk}: {run.status_label}.", messages.SUCCESS)
        return _run_page(run)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "run": run,
        "title": f"Cancel run {run.pk}?",
    }
    return TemplateResponse(request, "admin/finetune/trainingrun/cancel_confirm.html", context)


def relaunch_view(model_admin, request, object_id):
    run, back = _button_post(model_admin, request, object_id, allowed=model_admin.has_launch_permission(request))
    if back:
        return back
    try:
        new = training_run_relaunch(run=run, user=request.user)
    except TrainingRunError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return _run_page(run)
    model_admin.message_user(
        request, f"Draft run {new.pk} reuses run {run.pk}'s uploaded files. Confirm to launch it.", messages.SUCCESS
    )
    return HttpResponseRedirect(reverse("admin:finetune_trainingrun_launch", args=[new.pk]))


def evaluate_view(model_admin, request, object_id):
    """One click: the base model and the fine-tuned model on the run's validation split, linked to the run."""
    run, back = _button_post(model_admin, request, object_id, allowed=model_admin.has_run_eval_permission(request))
    if back:
        return back
    try:
        eval_runs, created = training_run_evaluate(run=run, user=request.user)
    except (EvalError, QueueUnavailable, ProviderError) as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return _run_page(run)
    ids = " and ".join(str(e.pk) for e in eval_runs)
    if created:
        model_admin.message_user(
            request,
            f"Eval runs {ids} queued: {eval_runs[0].model_name} (base) and "
            f"{eval_runs[1].model_name} (fine-tuned) on {eval_runs[0].total} validation "
            "examples of the run's dataset version.",
            messages.SUCCESS,
        )
    else:
        model_admin.message_user(request, f"Run {run.pk} was already evaluated: eval runs {ids}.", messages.WARNING)
    return HttpResponseRedirect(reverse("admin:finetune_evalrun_changelist") + f"?training_run__id__exact={run.pk}")


def run_live(run: TrainingRun) -> dict:
    """What the run page updates while the run is under way (launched, not finished): its progress (files, then
    steps) as text and, when the total is known, a bar."""
    last_event = run.events.order_by("-created_at_remote", "-id").first()
    count = run_count(run)
    return live_state(
        status=run.status,
        active=run.status != TrainingRun.Status.DRAFT and not run.is_terminal,
        fields={
            "status": run.status_label,
            "progress": count.text,
            "last_event": last_event.message if last_event else "no events yet",
            "last_synced": f"{run.last_synced_at:%Y-%m-%d %H:%M:%S}" if run.last_synced_at else "not yet",
        },
        bars={} if count.percent is None else {"progress": count.percent},
        charts=training_run_charts(run=run),  # the page's loss and accuracy charts grow while it runs
    )


def live_view(model_admin, request, object_id):
    """The JSON the run page polls (static/gestima/live.js); reads the row, never calls the provider."""
    try:
        run = run_get(model_admin, request, object_id)
    except PermissionDenied:
        return live_refused(403, "You may not view training runs.")
    except Http404:
        return live_refused(404, f"Run {object_id} does not exist.")
    return live_response(run_live(run))


def deploy_view(model_admin, request, object_id):
    """Create the run's Azure deployment through the management API; a job waits for it to be provisioned."""
    run, back = _button_post(model_admin, request, object_id, allowed=model_admin.has_launch_permission(request))
    if back:
        return back
    try:
        run = deployment_services.training_run_deploy(run=run, user=request.user, name=request.POST.get("name", ""))
    except (TrainingRunError, QueueUnavailable) as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
    else:
        model_admin.message_user(
            request,
            f"Deployment {run.deployment_name} requested ({run.deployment_state}); "
            "evaluations can use it once it has succeeded.",
            messages.SUCCESS,
        )
    return _run_page(run)


def record_deployment_view(model_admin, request, object_id):
    """Record the name of a deployment made in the Azure portal."""
    run, back = _button_post(model_admin, request, object_id, allowed=model_admin.has_launch_permission(request))
    if back:
        return back
    try:
        run = deployment_services.training_run_deployment_record(
            run=run, user=request.user, name=request.POST.get("name", "")
        )
    except TrainingRunError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
    else:
        model_admin.message_user(
            request,
            f"Deployment {run.deployment_name} recorded: evaluations of {run.fine_tuned_model} go through it.",
            messages.SUCCESS,
        )
    return _run_page(run)
