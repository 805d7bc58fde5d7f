"""Eval results in the admin: one row per example an eval run asked (read-only; the run page links here)."""

from __future__ import annotations

from django.contrib import admin

from finetune.metrics import usd
from finetune.models import EvalResult


@admin.register(EvalResult)
class EvalResultAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "eval_run",
        "example",
        "status",
        "error_kind",
        "latency_ms",
        "input_tokens",
        "output_tokens",
        "cost_display",
    ]
    list_filter = ["status", "error_kind"]
    list_select_related = ["eval_run", "example__task"]
    readonly_fields = [f.name for f in EvalResult._meta.fields if f.name != "cost_usd"] + ["cost_display"]
    exclude = ["cost_usd"]

    @admin.display(description="cost", ordering="cost_usd")
    def cost_display(self, obj):
        return usd(obj.cost_usd)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
