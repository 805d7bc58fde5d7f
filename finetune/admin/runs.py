"""Training runs in the admin: create a draft, launch after a confirmation page, watch it, sync, cancel, relaunch.

Every button is a thin call to finetune/services/run_*.py; rule violations come back as messages, never 500s.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from curation.models import BaseModel
from curation.services.base_models import base_model_date_warning
from finetune.charts import training_run_charts
from finetune.models import TrainingRun
from finetune.providers.base import ProviderError, configured_providers, default_provider_name
from finetune.services import deployments as deployment_services
from finetune.services.evals import EvalError, training_run_evaluate
from finetune.services.run_cancel import training_run_cancel, training_run_relaunch
from finetune.services.run_launch import (
    training_run_cost,
    training_run_create,
    training_run_duplicates,
    training_run_launch,
    training_run_launch_problems,
    training_run_launch_refusals,
    training_run_over_budget,
)
from finetune.services.hyperparameters import HYPERPARAMETER_LIMITS, HyperparameterInvalid, hyperparameter_check
from finetune.services.run_state import TrainingRunError
from finetune.services.run_sync import training_run_sync
from gestima.live import live_context, live_refused, live_response, live_state
from gestima.queues import QueueUnavailable


def base_model_label(model: BaseModel) -> str:
    """What a base-model choice shows: price, jobs-end and shutdown dates, and a warning when near or past."""
    price = model.training_price_per_1m
    parts = [model.name, f"${price}/1M training tokens" if price is not None else "training price unknown"]
    if model.jobs_end_date:
        parts.append(f"no new jobs after {model.jobs_end_date:%Y-%m-%d}")
    if model.shutdown_date:
        parts.append(f"shutdown {model.shutdown_date:%Y-%m-%d}")
    label = " · ".join(parts)
    return f"⚠ {label}" if base_model_date_warning(model) else label


class BaseModelChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return base_model_label(obj)


class TrainingRunForm(forms.ModelForm):
    base_model = BaseModelChoiceField(
        queryset=BaseModel.objects.filter(active=True),
        help_text="⚠ marks a model whose jobs-end or shutdown date is near or past.",
    )
    provider = forms.ChoiceField(choices=())
    training_type = forms.ChoiceField(
        choices=[("lora", "LoRA"), ("full", "Full")],
        initial="lora",
        required=False,
        help_text="Together only: LoRA adapters (the default) or full fine-tuning.",
    )

    class Meta:
        model = TrainingRun
        fields = [
            "dataset_version",
            "base_model",
            "provider",
            "n_epochs",
            "batch_size",
            "learning_rate_multiplier",
            "suffix",
            "seed",
            "budget_usd",
        ]
        help_texts = {
            "n_epochs": "1-50 or auto",
            "batch_size": "1-256 or auto",
            "learning_rate_multiplier": "> 0 or auto",
            "budget_usd": "Launch is refused above this estimate unless overridden with a reason.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "provider" in self.fields:  # absent on the read-only run page
            # Only providers whose settings are present (Together needs TOGETHER_API_KEY).
            self.fields["provider"].choices = [(name, name) for name in configured_providers()]
            self.fields["provider"].initial = default_provider_name()

    def clean(self):
        data = super().clean()
        try:
            for name in HYPERPARAMETER_LIMITS:
                data[name] = hyperparameter_check(name=name, value=data.get(name))
        except HyperparameterInvalid as exc:
            raise forms.ValidationError(str(exc))
        return data


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
            path("<path:object_id>/launch/", view(self.launch_view), name="finetune_trainingrun_launch"),
            path("<path:object_id>/sync/", view(self.sync_view), name="finetune_trainingrun_sync"),
            path("<path:object_id>/cancel/", view(self.cancel_view), name="finetune_trainingrun_cancel"),
            path("<path:object_id>/relaunch/", view(self.relaunch_view), name="finetune_trainingrun_relaunch"),
            path("<path:object_id>/evaluate/", view(self.evaluate_view), name="finetune_trainingrun_evaluate"),
            path("<path:object_id>/live.json", view(self.live_view), name="finetune_trainingrun_live"),
            path("<path:object_id>/deploy/", view(self.deploy_view), name="finetune_trainingrun_deploy"),
            path(
                "<path:object_id>/record-deployment/",
                view(self.record_deployment_view),
                name="finetune_trainingrun_record_deployment",
            ),
        ] + super().get_urls()

    def _run(self, request, object_id) -> TrainingRun:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(
            TrainingRun.objects.select_related("dataset_version__dataset", "base_model"), pk=object_id
        )

    def _run_page(self, run):
        return HttpResponseRedirect(reverse("admin:finetune_trainingrun_change", args=[run.pk]))

    def _button_post(self, request, object_id, *, allowed: bool):
        """(run, response) for a run-page button: 403 without its permission, a GET goes back to the run page
        (response set), a POST goes on (response None)."""
        run = self._run(request, object_id)
        if not allowed:
            raise PermissionDenied
        return run, (None if request.method == "POST" else self._run_page(run))

    def launch_view(self, request, object_id):
        run = self._run(request, object_id)
        if not self.has_launch_permission(request):
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
                self.message_user(request, str(exc), messages.ERROR)
                run.refresh_from_db()
                if run.status == TrainingRun.Status.DRAFT:  # refused: back to the confirmation page
                    return HttpResponseRedirect(request.path)
                return self._run_page(run)  # launched meanwhile (a second click) or queued later
            self.message_user(request, f"Run {run.pk} launched: uploading in the background.", messages.SUCCESS)
            return self._run_page(run)
        if run.status != TrainingRun.Status.DRAFT:
            self.message_user(request, f"Run {run.pk} was already launched ({run.status_label}).", messages.WARNING)
            return self._run_page(run)
        cost = training_run_cost(run=run)
        refusals = training_run_launch_refusals(run=run)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
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

    def sync_view(self, request, object_id):
        run = self._run(request, object_id)
        if request.method != "POST":
            return self._run_page(run)
        try:
            run = training_run_sync(run=run)
        except ProviderError as exc:
            self.message_user(request, f"Sync failed: {exc.message}", messages.ERROR)
            return self._run_page(run)
        level = messages.WARNING if run.sync_error else messages.SUCCESS
        self.message_user(
            request,
            f"Run {run.pk} synced: {run.status_label}." + (f" {run.sync_error}" if run.sync_error else ""),
            level,
        )
        return self._run_page(run)

    def cancel_view(self, request, object_id):
        run = self._run(request, object_id)
        if not self.has_launch_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            try:
                run = training_run_cancel(run=run, user=request.user)
            except (TrainingRunError, ProviderError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Run {run.pk}: {run.status_label}.", messages.SUCCESS)
            return self._run_page(run)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "run": run,
            "title": f"Cancel run {run.pk}?",
        }
        return TemplateResponse(request, "admin/finetune/trainingrun/cancel_confirm.html", context)

    def relaunch_view(self, request, object_id):
        run, back = self._button_post(request, object_id, allowed=self.has_launch_permission(request))
        if back:
            return back
        try:
            new = training_run_relaunch(run=run, user=request.user)
        except TrainingRunError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._run_page(run)
        self.message_user(
            request, f"Draft run {new.pk} reuses run {run.pk}'s uploaded files. Confirm to launch it.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:finetune_trainingrun_launch", args=[new.pk]))

    def has_run_eval_permission(self, request, obj=None):
        return request.user.has_perm("finetune.run_eval")

    def evaluate_view(self, request, object_id):
        """One click: the base model and the fine-tuned model on the run's validation split, linked to the run."""
        run, back = self._button_post(request, object_id, allowed=self.has_run_eval_permission(request))
        if back:
            return back
        try:
            eval_runs, created = training_run_evaluate(run=run, user=request.user)
        except (EvalError, QueueUnavailable, ProviderError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._run_page(run)
        ids = " and ".join(str(e.pk) for e in eval_runs)
        if created:
            self.message_user(
                request,
                f"Eval runs {ids} queued: {eval_runs[0].model_name} (base) and "
                f"{eval_runs[1].model_name} (fine-tuned) on {eval_runs[0].total} validation "
                "examples of the run's dataset version.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, f"Run {run.pk} was already evaluated: eval runs {ids}.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_changelist") + f"?training_run__id__exact={run.pk}")

    def _live(self, run: TrainingRun) -> dict:
        """What the run page updates while the run is under way (launched, not finished)."""
        last_metric = run.metrics.order_by("-step").first()
        last_event = run.events.order_by("-created_at_remote", "-id").first()
        if last_metric is None:
            progress = "no metrics yet"
        else:
            loss = "—" if last_metric.train_loss is None else f"{last_metric.train_loss:.4g}"
            progress = f"step {last_metric.step}, train loss {loss}"
        return live_state(
            status=run.status,
            active=run.status != TrainingRun.Status.DRAFT and not run.is_terminal,
            fields={
                "status": run.status_label,
                "progress": progress,
                "last_event": last_event.message if last_event else "no events yet",
                "last_synced": f"{run.last_synced_at:%Y-%m-%d %H:%M:%S}" if run.last_synced_at else "not yet",
            },
            charts=training_run_charts(run=run),  # the page's loss and accuracy charts grow while it runs
        )

    def live_view(self, request, object_id):
        """The JSON the run page polls (static/gestima/live.js); reads the row, never calls the provider."""
        try:
            run = self._run(request, object_id)
        except PermissionDenied:
            return live_refused(403, "You may not view training runs.")
        except Http404:
            return live_refused(404, f"Run {object_id} does not exist.")
        return live_response(self._live(run))

    def deploy_view(self, request, object_id):
        """Create the run's Azure deployment through the management API; a job waits for it to be provisioned."""
        run, back = self._button_post(request, object_id, allowed=self.has_launch_permission(request))
        if back:
            return back
        try:
            run = deployment_services.training_run_deploy(run=run, user=request.user, name=request.POST.get("name", ""))
        except (TrainingRunError, QueueUnavailable) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Deployment {run.deployment_name} requested ({run.deployment_state}); "
                "evaluations can use it once it has succeeded.",
                messages.SUCCESS,
            )
        return self._run_page(run)

    def record_deployment_view(self, request, object_id):
        """Record the name of a deployment made in the Azure portal."""
        run, back = self._button_post(request, object_id, allowed=self.has_launch_permission(request))
        if back:
            return back
        try:
            run = deployment_services.training_run_deployment_record(
                run=run, user=request.user, name=request.POST.get("name", "")
            )
        except TrainingRunError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Deployment {run.deployment_name} recorded: evaluations of {run.fine_tuned_model} go through it.",
                messages.SUCCESS,
            )
        return self._run_page(run)

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
        run = self._run(request, object_id)
        last_metric = run.metrics.order_by("-step").first()
        extra = {
            "run": run,
            "timeline": run.timeline or [],
            "events": list(run.events.order_by("-created_at_remote", "-id")[:200]),
            "metric_count": run.metrics.count(),
            "last_metric": last_metric,
            "checkpoints": list(run.checkpoints.order_by("-step")),
            "can_launch": self.has_launch_permission(request),
            "can_evaluate": (
                self.has_run_eval_permission(request)
                and run.status == TrainingRun.Status.SUCCEEDED
                and bool(run.fine_tuned_model)
            ),
            "eval_runs": list(run.eval_runs.order_by("pk")),
            "model_warning": base_model_date_warning(run.base_model),
            **live_context(state=self._live(run), url=reverse("admin:finetune_trainingrun_live", args=[run.pk])),
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
