"""The model registry in the admin: promoted versions per task, the active one, model cards and reports.

A version is made by promoting an eval run (finetune/admin/evalruns.py); here Managers switch the active one.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from finetune.admin.downloads import json_attachment, json_endpoint, markdown_attachment
from finetune.admin.fragments import serves_until_html
from finetune.formatting import markdown_html, report_tables
from finetune.models import ModelVersion
from finetune.selectors import lifecycles_attach, model_version_lifecycle
from finetune.services.promotion import model_version_activate


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task",
        "model_name",
        "kind",
        "provider",
        "is_active",
        "serves_until",
        "policy_passed",
        "promoted_by",
        "promoted_at",
        "downloads",
    ]
    list_filter = ["task", "is_active", "kind"]
    list_select_related = ["task", "training_run__base_model", "promoted_by"]
    actions = ["activate_selected"]
    readonly_fields = [
        "task",
        "model_name",
        "provider",
        "deployment_name",
        "kind",
        "serves_until",
        "training_run",
        "eval_run",
        "is_active",
        "promoted_by",
        "promoted_at",
        "policy_passed",
        "override_reason",
        "downloads",
        "model_card_display",
        "report_display",
    ]
    exclude = ["report", "model_card", "prompt_text"]
    # The changelist shows the lifecycle warnings box (the admin index shows the same include).
    change_list_template = "admin/finetune/modelversion/change_list.html"

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        lifecycles_attach(changelist.result_list)  # "serves until" of every row from one read
        return changelist

    @admin.display(description="serves until")
    def serves_until(self, obj):
        return serves_until_html(getattr(obj, "lifecycle", None) or model_version_lifecycle(obj))

    def has_add_permission(self, request):
        return False  # a version is made by promoting an eval run

    def has_change_permission(self, request, obj=None):
        return False

    def has_promote_permission(self, request):
        return request.user.has_perm("finetune.promote_model")

    @admin.display(description="download")
    def downloads(self, obj):
        return format_html(
            '<a href="{}">model card (.md)</a> · <a href="{}">report (.json)</a>',
            reverse("admin:finetune_modelversion_card", args=[obj.pk]),
            reverse("admin:finetune_modelversion_report", args=[obj.pk]),
        )

    @admin.display(description="model card")
    def model_card_display(self, obj):
        return render_to_string(
            "admin/finetune/modelversion/_card.html",
            {
                "card_html": markdown_html(obj.model_card),
                "markdown_url": reverse("admin:finetune_modelversion_card", args=[obj.pk]),
            },
        )

    @admin.display(description="report")
    def report_display(self, obj):
        return render_to_string(
            "admin/finetune/modelversion/_report.html",
            {
                "report": report_tables(obj.report),
                "json_url": reverse("admin:finetune_modelversion_report", args=[obj.pk]),
            },
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/model-card.md", wrap(self.card_view), name="finetune_modelversion_card"),
            path("<int:pk>/report.json", json_endpoint(self, self.report_view), name="finetune_modelversion_report"),
        ] + super().get_urls()

    def card_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion.objects.select_related("task"), pk=pk)
        return markdown_attachment(version.model_card, filename=f"model-card-{version.task.slug}-{version.pk}.md")

    def report_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied  # before the lookup: no answer tells which versions exist
        version = get_object_or_404(ModelVersion.objects.select_related("task"), pk=pk)
        return json_attachment(version.report, filename=f"promotion-report-{version.task.slug}-{version.pk}.json")

    @admin.action(description="Make the selected version the active model of its task", permissions=["promote"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version.", messages.ERROR)
            return
        version = model_version_activate(model_version=queryset.get(), user=request.user)
        self.message_user(request, f"{version.model_name} is now the active model of {version.task}.")
