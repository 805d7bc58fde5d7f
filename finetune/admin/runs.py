"""Training runs in the admin: the list, its actions, the create form's save and the run page.

The run page's buttons (launch, sync, cancel, relaunch, evaluate, deploy, live JSON) are in run_buttons.py and the
create form in run_form.py; every write is a thin call to finetune/services/run_*.py, rule violations come back as
messages, never 500s.
"""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from curation.services.base_models import base_model_date_warning
from finetune.admin.downloads import json_attachment, json_endpoint
from finetune.admin.run_buttons import (
    cancel_view,
    deploy_view,
    evaluate_view,
    launch_view,
    live_view,
    record_deployment_view,
    relaunch_view,
    run_get,
    run_live,
    sync_view,
)
from finetune.admin.run_form import TrainingRunForm
from finetune.formatting import checkpoint_table, checkpoints_json
from finetune.models import TrainingRun
from finetune.providers.base import ProviderError
from finetune.services import deployments as deployment_services
from finetune.services.run_cancel import training_run_relaunch
from finetune.services.run_launch import training_run_create
from finetune.services.run_state import TrainingRunError
from finetune.services.run_sync import training_run_sync
from gestima.live import live_context


class TrainingRunAdmin(admin.ModelAdmin):
    form = TrainingRunForm
    list_display = [
        "id",
        "dataset_version",
        "base_model",
        "provider",
        "status_badge",
        "estimated_cost_usd",
        "budget_usd",
        "trained_tokens",
        "actual_cost_usd",
        "fine_tuned_model",
        "created_at",
    ]
    list_filter = ["status", "provider", "base_model"]
    search_fields = ["job_id", "fine_tuned_model", "suffix"]
    list_select_related = ["dataset_version__dataset", "base_model"]
    actions = ["launch_selected", "sync_selected", "cancel_selected", "relaunch_selected"]
    change_form_template = "admin/finetune/trainingrun/change_form.html"
    readonly_fields_all = [
        "dataset_version",
        "base_model",
        "provider",
        "method",
        "n_epochs",
        "batch_size",
        "learning_rate_multiplier",
        "suffix",
        "seed",
        "metadata",
        "provider_options",
        "budget_usd",
        "estimated_tokens",
        "estimated_cost_usd",
        "override",
        "override_reason",
        "override_by",
        "status",
        "job_id",
        "training_file_id",
        "validation_file_id",
        "fine_tuned_model",
        "trained_tokens",
        "actual_cost_usd",
        "error_code",
        "error_message",
        "error_param",
        "sync_error",
        "resolved_hyperparameters",
        "estimated_finish_at",
        "orphaned_files",
        "relaunched_from",
        "created_by",
        "created_at",
        "launched_at",
        "finished_at",
        "last_synced_at",
        "run_dir",
    ]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return obj.status_label

    # --- permissions ---------------------------------------------------------------------
    def has_launch_permission(self, request, obj=None):
        return request.user.has_perm("finetune.launch_run")

    def has_change_permission(self, request, obj=None):
        # A run is a record of what was sent: once created, nothing is edited by hand (buttons call services).
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or obj.status == TrainingRun.Status.DRAFT)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields_all if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields_all if obj is not None else [*TrainingRunForm.Meta.fields, "training_type"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            run = training_run_create(
                dataset_version=data["dataset_version"],
                base_model=data["base_model"],
                user=request.user,
                provider=data["provider"],
                n_epochs=data["n_epochs"],
                batch_size=data["batch_size"],
                learning_rate_multiplier=data["learning_rate_multiplier"],
                suffix=data.get("suffix") or "",
                seed=data.get("seed"),
                budget_usd=data.get("budget_usd"),
                provider_options={"training_type": data.get("training_type") or "lora"}
                if data["provider"] == "together"
                else {},
            )
        except TrainingRunError as exc:
            raise PermissionDenied(str(exc))  # the form's clean() already checked what the service checks
        obj.pk = run.pk
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Draft run {obj.pk} created. Check the estimate, then launch it.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:finetune_trainingrun_launch", args=[obj.pk]))

    # --- urls and views ------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/launch/", view(partial(launch_view, self)), name="finetune_trainingrun_launch"),
            path("<path:object_id>/sync/", view(partial(sync_view, self)), name="finetune_trainingrun_sync"),
            path("<path:object_id>/cancel/", view(partial(cancel_view, self)), name="finetune_trainingrun_cancel"),
            path(
                "<path:object_id>/relaunch/", view(partial(relaunch_view, self)), name="finetune_trainingrun_relaunch"
            ),
            path(
                "<path:object_id>/evaluate/", view(partial(evaluate_view, self)), name="finetune_trainingrun_evaluate"
            ),
            path("<path:object_id>/live.json", view(partial(live_view, self)), name="finetune_trainingrun_live"),
            path(
                "<path:object_id>/checkpoints.json",
                json_endpoint(self, self.checkpoints_json_view),
                name="finetune_trainingrun_checkpoints_json",
            ),
            path("<path:object_id>/deploy/", view(partial(deploy_view, self)), name="finetune_trainingrun_deploy"),
            path(
                "<path:object_id>/record-deployment/",
                view(partial(record_deployment_view, self)),
                name="finetune_trainingrun_record_deployment",
            ),
        ] + super().get_urls()

    def checkpoints_json_view(self, request, object_id):
        """The run's checkpoints with the metrics the provider sent, as stored."""
        run = run_get(self, request, object_id)  # the run page's own permission
        checkpoints = list(run.checkpoints.order_by("step"))
        return json_attachment(checkpoints_json(run, checkpoints), filename=f"run-{run.pk}-checkpoints.json")

    def has_run_eval_permission(self, request, obj=None):
        return request.user.has_perm("finetune.run_eval")

    def _deployment_context(self, request, run) -> dict | None:
        if not deployment_services.deployment_needed(run):
            return None
        return {
            "missing": deployment_services.deployment_management_missing(run),
            "hourly_usd": deployment_services.deployment_hourly_usd(),
            "default_name": deployment_services.default_deployment_name(run),
            "can_manage": self.has_launch_permission(request),
            "serving": run.deployment_state in ("Succeeded", deployment_services.RECORDED),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = run_get(self, request, object_id)
        last_metric = run.metrics.order_by("-step").first()
        checkpoints = list(run.checkpoints.order_by("-step"))
        extra = {
            "run": run,
            "timeline": run.timeline or [],
            "events": list(run.events.order_by("-created_at_remote", "-id")[:200]),
            "metric_count": run.metrics.count(),
            "last_metric": last_metric,
            "checkpoints": checkpoints,
            "checkpoint_table": checkpoint_table(checkpoints),
            "can_launch": self.has_launch_permission(request),
            "can_evaluate": (
                self.has_run_eval_permission(request)
                and run.status == TrainingRun.Status.SUCCEEDED
                and bool(run.fine_tuned_model)
            ),
            "eval_runs": list(run.eval_runs.order_by("pk")),
            "model_warning": base_model_date_warning(run.base_model),
            **live_context(state=run_live(run), url=reverse("admin:finetune_trainingrun_live", args=[run.pk])),
            "deployment": self._deployment_context(request, run),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    # --- list actions (one service call each) ----------------------------------------------
    def _one(self, request, queryset, what):
        if queryset.count() != 1:
            self.message_user(request, f"Select exactly one run to {what}.", messages.ERROR)
            return None
        return queryset.first()

    @admin.action(description="Launch the selected run (confirmation page)", permissions=["launch"])
    def launch_selected(self, request, queryset):
        run = self._one(request, queryset, "launch")
        if run is not None:
            return HttpResponseRedirect(reverse("admin:finetune_trainingrun_launch", args=[run.pk]))

    @admin.action(description="Sync the selected runs now", permissions=["view"])
    def sync_selected(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                training_run_sync(run=run)
                done += 1
            except ProviderError as exc:
                self.message_user(request, f"Run {run.pk}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} run(s) synced.", messages.SUCCESS)

    @admin.action(description="Cancel the selected run (confirmation page)", permissions=["launch"])
    def cancel_selected(self, request, queryset):
        run = self._one(request, queryset, "cancel")
        if run is not None:
            return HttpResponseRedirect(reverse("admin:finetune_trainingrun_cancel", args=[run.pk]))

    @admin.action(
        description="Relaunch the selected runs (new drafts reusing the uploaded files)", permissions=["launch"]
    )
    def relaunch_selected(self, request, queryset):
        made, refused = [], []
        for run in queryset:
            try:
                made.append(training_run_relaunch(run=run, user=request.user))
            except TrainingRunError as exc:
                refused.append(str(exc))
        if made:
            self.message_user(
                request,
                f"{len(made)} draft run(s) created: {', '.join(str(r.pk) for r in made)}. "
                "Open each to confirm its launch.",
                messages.SUCCESS,
            )
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)


admin.site.register(TrainingRun, TrainingRunAdmin)
