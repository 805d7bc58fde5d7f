"""Eval runs in the admin: the list, the run page (progress, metrics, lineage), resume, and the list actions.

The pages of their own are in sibling modules, wired in get_urls: evaluating a model (eval_evaluate), comparing
two runs (eval_compare), promoting a run's model (eval_promote).

Thin: every button is one service call; domain errors become messages, never a 500. Markup is in
templates/admin/finetune/evals/ (fragments shared with the other eval screens: finetune/admin/fragments.py).
"""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from finetune.admin.eval_compare import compare_view
from finetune.admin.eval_evaluate import evaluate_view
from finetune.admin.eval_promote import promote_view
from finetune.admin.fragments import (
    few_shot_facts_html,
    lineage_html,
    metrics_html,
    percent,
    percent_with_ci,
    worst_html,
)
from finetune.charts import eval_run_charts
from finetune.metrics import usd
from finetune.models import EvalRun
from finetune.selectors import eval_runs_with_train_overlap
from finetune.services.evals import EvalError, eval_run_is_stale, eval_run_leak, eval_run_progress, eval_run_resume
from gestima.live import live_context, live_refused, live_response, live_state
from gestima.queues import QueueUnavailable


@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "model_name",
        "model_kind",
        "dataset_version",
        "split_display",
        "training_run",
        "status",
        "progress_display",
        "mape_display",
        "validity_display",
        "cost_display",
        "created_at",
    ]
    list_filter = ["status", "model_kind", "task", "dataset_version", "split", "endpoint"]
    search_fields = ["model_name"]
    list_select_related = [
        "dataset_version__dataset",
        "training_run__base_model",
        "training_run__dataset_version__dataset",
    ]
    actions = ["compare_selected", "resume_selected", "promote_selected"]
    readonly_fields = [
        "task",
        "model_name",
        "model_kind",
        "provider",
        "deployment_name",
        "dataset_version",
        "split",
        "training_run",
        "prompt_kind",
        "prompt_text",
        "status_display",
        "progress_display",
        "concurrency",
        "cost_display",
        "input_tokens",
        "output_tokens",
        "error",
        "attempts",
        "rq_job_id",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "metrics_display",
        "worst_display",
        "results_link",
        "leak_display",
        "lineage_display",
        "endpoint",
        "few_shot_display",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "leak_display",
                    "task",
                    "model_name",
                    "model_kind",
                    "provider",
                    "deployment_name",
                    "endpoint",
                    "training_run",
                    "dataset_version",
                    "split",
                    "status_display",
                    "progress_display",
                    "error",
                    "results_link",
                ]
            },
        ),
        ("Few-shot from reviewed examples", {"fields": ["few_shot_display"]}),
        ("Lineage", {"fields": ["lineage_display"]}),
        ("Metrics", {"fields": ["metrics_display"]}),
        ("Worst examples", {"fields": ["worst_display"]}),
        ("Prompt", {"classes": ["collapse"], "fields": ["prompt_kind", "prompt_text"]}),
        (
            "Run",
            {
                "classes": ["collapse"],
                "fields": [
                    "concurrency",
                    "cost_display",
                    "input_tokens",
                    "output_tokens",
                    "attempts",
                    "rq_job_id",
                    "created_by",
                    "created_at",
                    "started_at",
                    "heartbeat_at",
                    "finished_at",
                ],
            },
        ),
    ]

    def get_queryset(self, request):
        # The split column's leak warning reads the train overlap of every row from this one annotation.
        return eval_runs_with_train_overlap(super().get_queryset(request))

    # permissions
    def has_add_permission(self, request):
        return request.user.has_perm("finetune.run_eval")

    def has_change_permission(self, request, obj=None):
        return False

    def has_run_eval_permission(self, request):
        return request.user.has_perm("finetune.run_eval")

    def has_promote_permission(self, request):
        return request.user.has_perm("finetune.promote_model")

    # columns
    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        return format_html('<span data-live-field="status">{}</span>', obj.get_status_display())

    @admin.display(description="progress")
    def progress_display(self, obj):
        progress = eval_run_progress(obj)
        return render_to_string(
            "admin/finetune/evals/_progress.html", {"run": obj, "text": progress.text, "width": progress.percent}
        )

    @admin.display(description="MAPE")
    def mape_display(self, obj):
        numeric = (obj.metrics or {}).get("numeric") or {}
        first = next(iter(numeric.values()), None)
        return percent_with_ci(first.get("mape")) if first else "—"

    @admin.display(description="cost", ordering="cost_usd")
    def cost_display(self, obj):
        return usd(obj.cost_usd)

    @admin.display(description="split", ordering="split")
    def split_display(self, obj):
        leak = eval_run_leak(obj)
        return (
            format_html('{} <strong class="eval-leak" title="{}">⚠ {}</strong>', obj.split, leak, leak.split(":")[0])
            if leak
            else obj.split
        )

    @admin.display(description="unseen examples?")
    def leak_display(self, obj):
        leak = eval_run_leak(obj)
        if not leak:
            return "Yes: none of the evaluated examples was trained on."
        return format_html(
            '<strong class="eval-leak errornote">⚠ {}</strong> These numbers flatter the model; '
            "it cannot be promoted on them without a recorded override reason.",
            leak,
        )

    @admin.display(description="worked examples")
    def few_shot_display(self, obj):
        if not obj.few_shot:
            return "— (not a few-shot model)"
        return few_shot_facts_html(obj)

    @admin.display(description="lineage")
    def lineage_display(self, obj):
        return lineage_html(obj)

    @admin.display(description="JSON valid")
    def validity_display(self, obj):
        return percent(((obj.metrics or {}).get("json_validity") or {}).get("value"))

    @admin.display(description="metrics (bootstrap 95 % CI over examples)")
    def metrics_display(self, obj):
        return metrics_html(obj.metrics, tag_order=(obj.task.metric_spec or {}).get("tags"))

    @admin.display(description="worst examples")
    def worst_display(self, obj):
        return worst_html(obj)

    @admin.display(description="results")
    def results_link(self, obj):
        url = reverse("admin:finetune_evalresult_changelist") + f"?eval_run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} results</a>', url, obj.results.count())

    # views
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("evaluate/", wrap(partial(evaluate_view, self)), name="finetune_evalrun_evaluate"),
            path("compare/<int:a>/<int:b>/", wrap(partial(compare_view, self)), name="finetune_evalrun_compare"),
            path("<int:pk>/promote/", wrap(partial(promote_view, self)), name="finetune_evalrun_promote"),
            path("<int:pk>/resume/", wrap(self.resume_view), name="finetune_evalrun_resume"),
            path("<int:pk>/live.json", wrap(self.live_view), name="finetune_evalrun_live"),
        ] + super().get_urls()

    def _live(self, run: EvalRun) -> dict:
        """What the eval-run page updates while the run is queued or running."""
        progress = eval_run_progress(run)
        return live_state(
            status=run.status,
            active=run.status in (EvalRun.Status.QUEUED, EvalRun.Status.RUNNING),
            fields={"status": run.get_status_display(), "progress": progress.text},
            bars={"progress": progress.percent},
        )

    def live_view(self, request, pk):
        """The JSON the eval-run page polls (static/gestima/live.js)."""
        if not self.has_view_permission(request):
            return live_refused(403, "You may not view eval runs.")
        try:
            run = get_object_or_404(EvalRun, pk=pk)
        except Http404:
            return live_refused(404, f"Eval run {pk} does not exist.")
        return live_response(self._live(run))

    def _can_resume(self, request, run: EvalRun) -> bool:
        if not self.has_run_eval_permission(request):
            return False
        return run.status == EvalRun.Status.FAILED or (run.status == EvalRun.Status.RUNNING and eval_run_is_stale(run))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = EvalRun.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra = {}
        if run is not None:
            extra = {
                "run": run,
                "can_resume": self._can_resume(request, run),
                "can_promote": self.has_promote_permission(request) and run.status == EvalRun.Status.DONE,
                "charts": eval_run_charts(run=run),
                **live_context(state=self._live(run), url=reverse("admin:finetune_evalrun_live", args=[run.pk])),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def resume_view(self, request, pk):
        """The "Resume" button of the run page: the same service as the list action."""
        if not self.has_run_eval_permission(request):
            raise PermissionDenied("Only Managers may resume evaluations.")
        run = get_object_or_404(EvalRun, pk=pk)
        if request.method == "POST":
            try:
                run = eval_run_resume(eval_run=run, user=request.user)
            except (EvalError, QueueUnavailable) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Eval run {run.pk} queued again: only examples without a result are asked.")
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_change", args=[run.pk]))

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_evaluate"))

    # actions
    @admin.action(description="Compare the two selected runs (paired)", permissions=["view"])
    def compare_selected(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True))
        if len(ids) != 2:
            self.message_user(request, "Select exactly two eval runs to compare.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_compare", args=ids))

    @admin.action(
        description="Resume the selected runs (asks only examples without a result)", permissions=["run_eval"]
    )
    def resume_selected(self, request, queryset):
        resumed = 0
        for run in queryset:
            try:
                eval_run_resume(eval_run=run, user=request.user)
                resumed += 1
            except (EvalError, QueueUnavailable) as exc:
                self.message_user(request, f"Run {run.pk}: {exc}", messages.ERROR)
        if resumed:
            self.message_user(request, f"{resumed} eval run(s) queued again.")

    @admin.action(description="Promote the selected run's model…", permissions=["promote"])
    def promote_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one eval run to promote.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_promote", args=[queryset.get().pk]))
