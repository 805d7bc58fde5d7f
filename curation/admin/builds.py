"""Dataset builds in the admin: the build page shows its progress live, then the version it made.

Read-only: a build is started by the datasets' "Build version" action (curation/admin/datasets.py).
"""

from django.contrib import admin
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from curation.models import DatasetBuild
from curation.services.dataset_builds import dataset_build_summary
from gestima.live import live_context, live_refused, live_response, progress_html
from gestima.work import WorkStatus, work_live_state, work_percent, work_progress_text


def work_progress_html(row) -> str:
    return progress_html(
        text=work_progress_text(row), percent=100 if row.status == WorkStatus.DONE else work_percent(row)
    )


@admin.register(DatasetBuild)
class DatasetBuildAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "progress", "outcome", "requested_by", "created_at"]
    list_filter = ["status", "dataset"]
    fields = ["dataset", "status", "progress", "outcome", "error", "requested_by", "created_at", "finished_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress")
    def progress(self, obj):
        return work_progress_html(obj)

    @admin.display(description="Outcome")
    def outcome(self, obj):
        if obj.status == WorkStatus.DONE and obj.version_id:
            url = reverse("admin:curation_datasetversion_change", args=[obj.version_id])
            return format_html('<a href="{}" class="build-version">{}</a>', url, dataset_build_summary(obj))
        return dataset_build_summary(obj)

    def get_urls(self):
        live = path("<int:pk>/live.json", self.admin_site.admin_view(self.live_view), name="curation_datasetbuild_live")
        return [live, *super().get_urls()]

    def live_view(self, request, pk):
        """The JSON the build page polls (static/gestima/live.js)."""
        if not self.has_view_permission(request):
            return live_refused(403, "You may not view dataset builds.")
        try:
            build = get_object_or_404(DatasetBuild, pk=pk)
        except Http404:
            return live_refused(404, f"Dataset build {pk} does not exist.")
        return live_response(work_live_state(build))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        build = DatasetBuild.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra = {}
        if build is not None:
            extra = live_context(
                state=work_live_state(build), url=reverse("admin:curation_datasetbuild_live", args=[build.pk])
            )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})
