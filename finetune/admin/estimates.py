"""Estimates in the admin: ask the task's active model about a drawing, read the answer, correct it.

A correction becomes a pending example for review. The "Estimate" action on the drawing list is cross-app
glue and lives in gestima/admin_glue.py.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from curation.models import Drawing, Task
from curation.services.drawings import DRAWING_TASK_SLUG
from curation.services.tasks import TargetInvalid
from finetune.admin.downloads import json_attachment, json_endpoint
from finetune.admin.fragments import drawing_cell_html, tool_page
from finetune.estimate_json import estimate_json
from finetune.formatting import MISSING, answer_tables, estimate_live_json, live_score_rows
from finetune.metrics import pct, usd
from finetune.models import Estimate
from finetune.services.estimates import EstimateError, estimate_correct, estimate_create


class EstimateForm(forms.Form):
    task = forms.ModelChoiceField(Task.objects.all())
    drawing = forms.ModelChoiceField(Drawing.objects.filter(status=Drawing.Status.RENDERED))


class CorrectForm(forms.Form):
    target_text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "cols": 100, "style": "font-family:monospace"}),
        label="Corrected answer (JSON, checked against the task schema)",
    )


@admin.register(Estimate)
class EstimateAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "drawing",
        "task",
        "model_name",
        "provider",
        "answered_by",
        "summary",
        "live_ape",
        "scored_at",
        "error_kind",
        "latency_ms",
        "cost_display",
        "corrected",
        "created_at",
    ]
    list_filter = ["task", "provider", "answered_by", "error_kind"]
    search_fields = ["drawing__part_number", "model_name"]
    list_select_related = ["drawing", "task"]
    readonly_fields = [
        "task",
        "drawing_display",
        "model_version",
        "answer_display",
        "live_score_display",
        "raw_output",
        "error_kind",
        "error",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost_display",
        "created_by",
        "created_at",
        "corrected_target",
        "corrected_by",
        "corrected_at",
        "example",
        "correct_link",
    ]
    # Shown formatted (the answer and live score sections) or only in the JSON download.
    exclude = [
        "drawing",
        "output",
        "cost_usd",
        "model_name",
        "provider",
        "answered_by",
        "fallback_reason",
        "live_score",
        "live_errors",
        "live_ape_sum",
        "live_ape_n",
        "scored_ground_truth_at",
        "scored_at",
    ]

    @admin.display(description="cost", ordering="cost_usd")
    def cost_display(self, obj):
        return usd(obj.cost_usd)

    def has_add_permission(self, request):
        return request.user.has_perm("finetune.add_estimate")

    def has_change_permission(self, request, obj=None):
        return False

    def has_correct_permission(self, request):
        return request.user.has_perm("finetune.correct_estimate")

    @admin.display(description="answer")
    def summary(self, obj):
        if not isinstance(obj.output, dict):
            return "—"
        ops = obj.output.get("operations") or []
        return (
            ", ".join(
                f"{o.get('machine')} {o.get('operation')} {o.get('machine_time_min_per_piece')} min"
                for o in ops
                if isinstance(o, dict)
            )[:200]
            or "—"
        )

    @admin.display(boolean=True)
    def corrected(self, obj):
        return bool(obj.corrected_at)

    @admin.display(description="drawing")
    def drawing_display(self, obj):
        return drawing_cell_html(obj.drawing)

    @admin.display(description="live APE", ordering="live_score")
    def live_ape(self, obj):
        # From the row itself (scored by finetune/services/estimate_scores.py): no query per row.
        return pct(obj.live_score, missing=MISSING) if obj.scored_at else MISSING

    @admin.display(description="answer")
    def answer_display(self, obj):
        return render_to_string(
            "admin/finetune/estimate/_answer.html",
            {
                "estimate": obj,
                "answer": answer_tables(obj.output),
                "json_url": reverse("admin:finetune_estimate_json", args=[obj.pk]),
            },
        )

    @admin.display(description="live score")
    def live_score_display(self, obj):
        key_fields = (obj.task.metric_spec or {}).get("key") or []
        return render_to_string(
            "admin/finetune/estimate/_live_score.html",
            {
                "estimate": obj,
                "ape": pct(obj.live_score, missing=MISSING),
                "errors": live_score_rows(obj.live_errors, key_fields),
            },
        )

    @admin.display(description="correction")
    def correct_link(self, obj):
        return format_html(
            '<a class="button" href="{}">Correct this estimate</a>',
            reverse("admin:finetune_estimate_correct", args=[obj.pk]),
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("estimate/", wrap(self.estimate_view), name="finetune_estimate_create"),
            path("<int:pk>/correct/", wrap(self.correct_view), name="finetune_estimate_correct"),
            path("<int:pk>/estimate.json", json_endpoint(self, self.json_view), name="finetune_estimate_json"),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:finetune_estimate_create"))

    def estimate_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EstimateForm(
            request.POST or None,
            initial={
                "task": Task.objects.filter(slug=DRAWING_TASK_SLUG).first(),
                "drawing": request.GET.get("drawing"),
            },
        )
        if request.method == "POST" and form.is_valid():
            try:
                estimate = estimate_create(
                    drawing=form.cleaned_data["drawing"], task=form.cleaned_data["task"], user=request.user
                )
            except EstimateError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                level = messages.WARNING if estimate.error or estimate.fallback_reason else messages.SUCCESS
                by = f" (the task's fallback: {estimate.fallback_reason})" if estimate.fallback_reason else ""
                self.message_user(
                    request,
                    f"Estimate {estimate.pk} by {estimate.model_name}{by}"
                    + (f": {estimate.error}" if estimate.error else "."),
                    level,
                )
                return HttpResponseRedirect(reverse("admin:finetune_estimate_change", args=[estimate.pk]))
        return tool_page(
            request,
            self,
            title="Estimate a drawing",
            form=form,
            submit="Ask the active model",
            intro="The task's active model (see Model versions) answers now.",
        )

    def json_view(self, request, pk):
        """The estimate as the API gives it, with its live score once production records scored it."""
        if not self.has_view_permission(request):
            raise PermissionDenied  # before the lookup: no answer tells which estimates exist
        estimate = get_object_or_404(Estimate.objects.select_related("task", "drawing"), pk=pk)
        data = {**estimate_json(estimate), "live_score": estimate_live_json(estimate)}
        return json_attachment(data, filename=f"estimate-{estimate.pk}.json")

    def correct_view(self, request, pk):
        if not self.has_correct_permission(request):
            raise PermissionDenied
        estimate = get_object_or_404(Estimate.objects.select_related("task", "drawing"), pk=pk)
        initial = estimate.corrected_target or (
            json.dumps(estimate.output, indent=2, ensure_ascii=False)
            if estimate.output is not None
            else estimate.raw_output
        )
        form = CorrectForm(request.POST or None, initial={"target_text": initial})
        if request.method == "POST" and form.is_valid():
            try:
                estimate = estimate_correct(
                    estimate=estimate, user=request.user, target_text=form.cleaned_data["target_text"]
                )
            except TargetInvalid as exc:
                form.add_error("target_text", str(exc))
            else:
                self.message_user(request, f"Saved: pending example {estimate.example_id} made for review.")
                return HttpResponseRedirect(reverse("admin:finetune_estimate_change", args=[estimate.pk]))
        return tool_page(
            request,
            self,
            title=f"Correct estimate {estimate.pk} ({estimate.drawing})",
            form=form,
            submit="Save the correction as a pending example",
            body=drawing_cell_html(estimate.drawing),
        )
