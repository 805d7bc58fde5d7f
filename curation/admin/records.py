"""Admin for the reference tables, production records (with CSV upload), ground truth and tasks.

Thin: the upload view, the material edit and the "Build examples" action are each one service call.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from curation.admin.builds import work_progress_html
from curation.models import GroundTruth, Machine, MaterialAlias, ProductionImport, ProductionRecord, Task
from curation.services.examples import examples_build
from curation.services.ground_truth import ground_truth_material_set
from curation.openai_format import MAX_IMAGES_PER_EXAMPLE
from curation.services.production import (
    production_record_update,
    production_records_changed,
    production_records_delete,
)
from curation.services.production_imports import production_import_queued_text, production_import_request
from curation.services.tasks import SchemaInvalid, schema_check
from gestima.live import live_context, live_refused, live_response
from gestima.queues import QueueUnavailable
from gestima.work import WorkStatus, work_live_state

IMPORT_PERMISSION = "curation.add_productionrecord"
BUILD_PERMISSION = "curation.add_example"
# Skipped drawings named one by one after "Build examples"; the command lists them all.
SKIPPED_SHOWN = 10


@admin.register(Machine)
class MachineAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "spindles", "alias_list"]
    list_filter = ["kind"]
    search_fields = ["name"]

    @admin.display(description="aliases")
    def alias_list(self, obj):
        return ", ".join(obj.aliases or [])


@admin.register(MaterialAlias)
class MaterialAliasAdmin(admin.ModelAdmin):
    list_display = ["written", "norm"]
    list_editable = ["norm"]
    search_fields = ["written", "norm"]


class ProductionCsvForm(forms.Form):
    file = forms.FileField(
        label="Production times CSV",
        help_text="Columns: part_number, order_id, machine, operation, pieces, "
        "machine_time_min_per_piece, setup_min, recorded_at (optional).",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 1e6:.1f} MB; uploads are limited to "
                f"{settings.UPLOAD_MAX_BYTES / 1e6:.0f} MB."
            )
        return upload


@admin.register(ProductionRecord)
class ProductionRecordAdmin(admin.ModelAdmin):
    list_display = [
        "part_number",
        "order_id",
        "machine",
        "operation",
        "pieces",
        "machine_time_min_per_piece",
        "setup_min",
        "recorded_at",
        "source_name",
    ]
    list_filter = ["operation", "machine", "source_name"]
    search_fields = ["part_number", "order_id"]
    date_hierarchy = "recorded_at"
    change_list_template = "admin/curation/productionrecord/change_list.html"

    def save_model(self, request, obj, form, change):
        self._report(request, *production_record_update(record=obj, user=request.user))

    def delete_model(self, request, obj):
        self._report(
            request, *production_records_delete(records=ProductionRecord.objects.filter(pk=obj.pk), user=request.user)
        )

    def delete_queryset(self, request, queryset):
        self._report(request, *production_records_delete(records=queryset, user=request.user))

    def _report(self, request, changed, rebuild):
        if changed:
            self.message_user(request, f"Ground truth recomputed for {', '.join(changed)}; {rebuild.summary()}.")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("import/", wrap(self.import_view), name="curation_productionrecord_import"),
            path("import/<int:import_id>/", wrap(self.import_view), name="curation_productionrecord_import_status"),
            path(
                "import/<int:import_id>/live.json",
                wrap(self.import_live_view),
                name="curation_productionrecord_import_live",
            ),
        ] + super().get_urls()

    def import_view(self, request, import_id=None):
        # Checked here, not only by hiding the button: a reviewer posting the form is refused.
        if not request.user.has_perm(IMPORT_PERMISSION):
            raise PermissionDenied
        form = ProductionCsvForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                job, queued = production_import_request(file=upload, user=request.user)
            except QueueUnavailable as exc:
                form.add_error("file", f"{exc} Nothing was stored: import again once the queue is back.")
            else:
                said = production_import_queued_text(job, queued=queued)
                self.message_user(request, f"{upload.name}: {said}; the progress shows below.")
                # Post/redirect/get: a reload does not send the file again; the page polls the import's row.
                return HttpResponseRedirect(reverse("admin:curation_productionrecord_import_status", args=[job.pk]))
        job = get_object_or_404(ProductionImport, pk=import_id) if import_id is not None else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import production times",
            "form": form,
            "job": job,
            "report": job.report if job is not None and job.status == WorkStatus.DONE else None,
        }
        if job is not None:
            context["progress"] = work_progress_html(job)
            context.update(
                live_context(
                    state=work_live_state(job),
                    url=reverse("admin:curation_productionrecord_import_live", args=[job.pk]),
                )
            )
        return TemplateResponse(request, "admin/curation/productionrecord/import.html", context)

    def import_live_view(self, request, import_id):
        """The JSON the import page polls (static/gestima/live.js) while the file is being imported."""
        if not request.user.has_perm(IMPORT_PERMISSION):
            return live_refused(403, "You may not import production records.")
        job = ProductionImport.objects.filter(pk=import_id).first()
        if job is None:
            return live_refused(404, f"Import {import_id} does not exist.")
        return live_response(work_live_state(job))


class GroundTruthForm(forms.ModelForm):
    class Meta:
        model = GroundTruth
        fields = ["material"]


@admin.register(GroundTruth)
class GroundTruthAdmin(admin.ModelAdmin):
    form = GroundTruthForm
    list_display = [
        "part_number",
        "material",
        "material_source",
        "record_count",
        "operation_count",
        "max_cv",
        "high_cv",
        "computed_at",
    ]
    list_filter = ["high_cv", "material_source"]
    search_fields = ["part_number", "material"]
    readonly_fields = [
        "part_number",
        "material_source",
        "record_count",
        "max_cv",
        "high_cv",
        "computed_at",
        "operations_table",
    ]
    fields = [
        "part_number",
        "material",
        "material_source",
        "operations_table",
        "record_count",
        "max_cv",
        "high_cv",
        "computed_at",
    ]
    actions = ["recompute"]

    def has_add_permission(self, request):
        return False  # ground truth comes from production records, never typed in

    @admin.display(description="operations")
    def operation_count(self, obj):
        return len(obj.operations or [])

    @admin.display(description="Trimmed means per machine and operation")
    def operations_table(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    op.get("operation"),
                    op.get("machine"),
                    op.get("machine_time_min_per_piece"),
                    op.get("setup_min"),
                    op.get("n"),
                    "" if op.get("cv") is None else f"{op['cv']:.2f}",
                )
                for op in obj.operations or []
            ),
        )
        return format_html(
            "<table><thead><tr><th>operation</th><th>machine</th><th>min / piece</th><th>setup min</th>"
            "<th>n</th><th>CV</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request, obj, form, change):
        # A hand-entered material survives recomputes (scans have no text layer to read it from).
        ground_truth_material_set(ground_truth=obj, material=form.cleaned_data["material"])

    @admin.action(description="Recompute from production records", permissions=["change"])
    def recompute(self, request, queryset):
        part_numbers = list(queryset.values_list("part_number", flat=True))
        changed, rebuild = production_records_changed(part_numbers=part_numbers, user=request.user)
        self.message_user(
            request, f"{len(part_numbers)} parts recomputed, {len(changed)} changed, {rebuild.summary()}."
        )


class TaskForm(forms.ModelForm):
    class Meta:
        model = Task
        fields = "__all__"

    def clean_output_schema(self):
        schema = self.cleaned_data["output_schema"]
        try:
            schema_check(schema=schema)
        except SchemaInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc
        return schema

    def clean_max_images(self):
        value = self.cleaned_data["max_images"]
        if value > MAX_IMAGES_PER_EXAMPLE:
            raise forms.ValidationError(f"OpenAI accepts at most {MAX_IMAGES_PER_EXAMPLE} images per example.")
        return value


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskForm
    list_display = ["slug", "name", "schema_version", "prompt_version", "uses_images", "image_detail", "example_count"]
    search_fields = ["slug", "name"]
    actions = ["build_examples"]

    @admin.display(description="examples")
    def example_count(self, obj):
        url = reverse("admin:curation_example_changelist") + f"?task__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.examples.count())

    def has_build_examples_permission(self, request):
        return request.user.has_perm(BUILD_PERMISSION)

    @admin.action(description="Build examples from rendered drawings + ground truth", permissions=["build_examples"])
    def build_examples(self, request, queryset):
        for task in queryset:
            if not task.uses_images:
                self.message_user(request, f"{task.slug}: not a drawing task, nothing to build.", messages.WARNING)
                continue
            report = examples_build(task=task)
            self.message_user(request, f"{task.slug}: {report.summary()}.")
            for skipped in report.skipped[:SKIPPED_SHOWN]:
                self.message_user(
                    request,
                    f"Skipped {skipped['part_number'] or skipped['drawing_id']}: {skipped['reason']}",
                    messages.WARNING,
                )
            if len(report.skipped) > SKIPPED_SHOWN:
                self.message_user(
                    request,
                    f"… and {len(report.skipped) - SKIPPED_SHOWN} more skipped drawings "
                    "(`manage.py build_examples` lists them all).",
                    messages.WARNING,
                )
