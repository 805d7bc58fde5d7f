"""Datasets in the admin: build versions, the read-only version with its readiness panel, export and download.

Thin: every write is one service call (`dataset_build_request`, `dataset_version_export_request`); errors
become messages. Base models (prices, dates) are edited here too, with a warning when dates are near.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import slugify

from curation.models import BaseModel, Dataset, DatasetVersion
from curation.selectors import dataset_version_provider_fit, dataset_version_refused_members
from curation.services.base_models import base_model_date_warning
from curation.services.dataset_builds import dataset_build_request
from curation.services.dataset_costs import dataset_version_training_costs
from curation.services.cost_projection import PROJECTION_SCALES, dataset_version_cost_projection
from curation.services.export_queue import EXPORT_BUSY, dataset_version_export_request, export_progress
from curation.services.exports import ExportError, export_file_open
from gestima.dataset_charts import dataset_version_charts
from gestima.live import live_context, live_refused, live_response, live_state, progress_html
from gestima.queues import QueueUnavailable

BUILD_PERMISSION = "curation.build_dataset"
EXPORT_PERMISSION = "curation.export_dataset"
EXPORT_FILES = ("train.jsonl", "validation.jsonl", "manifest.json")


def _example_url(example_id) -> str:
    try:
        return reverse("admin:curation_example_change", args=[example_id])
    except NoReverseMatch:
        return ""


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "task", "validation_fraction", "split_seed", "epochs", "latest_version"]
    list_filter = ["task"]
    search_fields = ["name"]
    actions = ["build_version"]
    fieldsets = [
        (None, {"fields": ["name", "task"]}),
        ("Which examples", {"fields": ["statuses", "min_quality", "min_confidence", "tag_filters"]}),
        ("Split", {"fields": ["validation_fraction", "split_seed", "split_group"]}),
        (
            "Policy (gates)",
            {
                "fields": [
                    "min_rows",
                    "min_groups",
                    "max_tag_share",
                    "max_duplicate_target_share",
                    "max_same_prefix_share",
                    "prefix_chars",
                ]
            },
        ),
        ("Cost", {"fields": ["epochs"]}),
    ]

    def has_build_dataset_permission(self, request):
        return request.user.has_perm(BUILD_PERMISSION)

    @admin.display(description="Latest version")
    def latest_version(self, obj):
        version = obj.versions.order_by("-number").first()
        if version is None:
            return "—"
        url = reverse("admin:curation_datasetversion_change", args=[version.pk])
        state = "ready" if version.gates_passed else "not ready"
        return format_html('<a href="{}">v{}</a> ({})', url, version.number, state)

    @admin.action(description="Build version", permissions=["build_dataset"])
    def build_version(self, request, queryset):
        builds = []
        for dataset in queryset:
            try:
                build, queued = dataset_build_request(dataset=dataset, user=request.user)
            except QueueUnavailable as exc:
                self.message_user(
                    request,
                    f"{dataset}: not built. {exc} Nothing was queued: build again once the "
                    "queue is back (start Redis, or check REDIS_URL).",
                    messages.ERROR,
                )
                return None
            builds.append(build)
            url = reverse("admin:curation_datasetbuild_change", args=[build.pk])
            said = "build queued" if queued else "a build is already under way (no second one was queued)"
            self.message_user(request, format_html('{}: {}; <a href="{}">its progress</a>.', dataset, said, url))
        if len(builds) == 1:  # one dataset: straight to the page that shows the build's progress
            return HttpResponseRedirect(reverse("admin:curation_datasetbuild_change", args=[builds[0].pk]))
        return None


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "created_at", "rows", "ready", "export_state"]
    list_filter = ["dataset", "gates_passed", "export_status"]
    actions = ["export"]
    fields = [
        "dataset",
        "number",
        "content_hash",
        "prompt_version",
        "schema_version",
        "created_by",
        "created_at",
        "export_state",
        "downloads",
        "readiness",
        "provider_refused",
        "provider_formats",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a version is frozen

    def has_delete_permission(self, request, obj=None):
        return False  # runs point at versions: what was trained on must stay known

    def has_export_dataset_permission(self, request):
        return request.user.has_perm(EXPORT_PERMISSION)

    @admin.display(description="Rows")
    def rows(self, obj):
        return f"{obj.counts.get('train', 0)} train / {obj.counts.get('validation', 0)} validation"

    @admin.display(description="Ready", boolean=True)
    def ready(self, obj):
        return obj.gates_passed

    @admin.display(description="Refused by the provider")
    def provider_refused(self, obj):
        members = dataset_version_refused_members(version=obj)
        if not members:
            return "None"
        return render_to_string("admin/curation/datasetversion/provider_refused.html", {"members": members})

    @staticmethod
    def _export_busy(obj) -> bool:
        return obj.export_status in EXPORT_BUSY

    @admin.display(description="Export")
    def export_state(self, obj):
        if self._export_busy(obj):
            # The version page moves text and bar in place while the export runs (static/gestima/live.js).
            progress = export_progress(obj)
            return progress_html(text=progress.text, percent=progress.percent, name="export")
        if obj.export_status == DatasetVersion.ExportStatus.FAILED:
            return format_html('<span style="color:#ba2121">Failed: {}</span>', obj.export_error)
        if obj.export_status == DatasetVersion.ExportStatus.DONE:
            return f"Done {obj.exported_at:%Y-%m-%d %H:%M} into {obj.export_dir}"
        return obj.get_export_status_display()

    @admin.display(description="Download")
    def downloads(self, obj):
        if obj.export_status != DatasetVersion.ExportStatus.DONE:
            return "—"
        links = [
            (reverse("admin:curation_datasetversion_download", args=[obj.pk, name]), name) for name in EXPORT_FILES
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="Readiness")
    def readiness(self, obj):
        gates = format_html_join(
            "",
            '<tr><td style="color:{}">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    "#2e7d32" if g["passed"] else "#ba2121",
                    "PASS" if g["passed"] else "FAIL",
                    g["name"],
                    g["value"],
                    g["threshold"],
                    g["message"],
                )
                for g in obj.gates
            ),
        )
        problems = format_html_join(
            "",
            '<tr><td><a href="{}">example {}</a></td><td>{} line {}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    _example_url(p["example_id"]),
                    p["example_id"],
                    p["split"],
                    p["line"],
                    p.get("level", "error"),
                    p["code"],
                    p["message"],
                )
                for p in obj.problems[:200]
            ),
        )
        more = f"… and {len(obj.problems) - 200} more" if len(obj.problems) > 200 else ""
        tokens = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (split, f"{t.get('text', 0):,}", f"{t.get('image', 0):,}", f"{t.get('total', 0):,}")
                for split, t in ((s, obj.tokens.get(s) or {}) for s in ("train", "validation"))
            ),
        )
        # Today's prices through the same function the launch confirmation and the budget guard use.
        costs = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    m.name,
                    f"${c.usd}" if c.usd is not None else "unknown (no published price)",
                    f"{c.train_tokens:,} × {c.epochs}",
                    m.jobs_end_date or "—",
                    m.shutdown_date or "—",
                    c.problem,
                )
                for m, c in dataset_version_training_costs(version=obj)
            ),
        )
        counts = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (split, tag, ", ".join(f"{value}: {n}" for value, n in sorted(values.items(), key=lambda kv: -kv[1])))
                for split, tags in obj.tag_counts.items()
                for tag, values in sorted(tags.items())
            ),
        )
        verdict = format_html(
            '<p style="font-weight:bold;color:{}">{}</p>',
            "#2e7d32" if obj.gates_passed else "#ba2121",
            "Ready to train" if obj.gates_passed else "Not ready: see the failed gates",
        )
        return format_html(
            "{}<h3>Gates</h3><table><tr><th></th><th>Gate</th><th>Value</th><th>Threshold</th><th>Message</th></tr>{}</table>"
            "<h3>Format problems ({})</h3><table>{}</table>{}"
            "<h3>Rows</h3><p>{} train / {} validation rows, {} groups ({} train, {} validation)</p>"
            "<h3>Tokens ({})</h3><table><tr><th>Split</th><th>Text</th><th>Image</th><th>Total</th></tr>{}</table>"
            "<h3>Estimated training cost ({} epochs)</h3><table><tr><th>Base model</th><th>Cost</th><th>Tokens × "
            "epochs</th>"
            "<th>No new jobs after</th><th>Shutdown</th><th></th></tr>{}</table>"
            "<h3>Tags per split</h3><table>{}</table>",
            verdict,
            gates,
            len(obj.problems),
            problems,
            more,
            obj.counts.get("train", 0),
            obj.counts.get("validation", 0),
            obj.counts.get("groups", 0),
            obj.counts.get("train_groups", 0),
            obj.counts.get("validation_groups", 0),
            obj.tokens.get("encoding", ""),
            tokens,
            obj.dataset.epochs,
            costs,
            counts,
        )

    @admin.display(description="Fits which trainer")
    def provider_formats(self, obj):
        return render_to_string(
            "admin/curation/datasetversion/provider_formats.html", {"fits": dataset_version_provider_fit(version=obj)}
        )

    @admin.action(description="Export (train.jsonl, validation.jsonl, manifest.json)", permissions=["export_dataset"])
    def export(self, request, queryset):
        queued = 0
        for version in queryset:
            try:
                dataset_version_export_request(version=version)
            except QueueUnavailable as exc:
                # Nothing retries an export by itself: the version is left as it was, so say what to do.
                self.message_user(
                    request,
                    f"{version}: not exported. {exc} Nothing was queued: export again once "
                    "the queue is back (start Redis, or check REDIS_URL).",
                    messages.ERROR,
                )
                return
            except ExportError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            queued += 1
        if queued:
            self.message_user(request, f"{queued} export(s) queued; progress shows on each version.")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/download/<str:name>/", wrap(self.download_view), name="curation_datasetversion_download"),
            path("<int:pk>/export/", wrap(self.export_view), name="curation_datasetversion_export"),
            path("<int:pk>/live.json", wrap(self.live_view), name="curation_datasetversion_live"),
            *super().get_urls(),
        ]

    def _live(self, version: DatasetVersion) -> dict:
        """What the version page updates while its export is queued or running."""
        return live_state(
            status=version.export_status,
            active=self._export_busy(version),
            fields={"export": export_progress(version).text},
            bars={"export": export_progress(version).percent},
        )

    def live_view(self, request, pk):
        """The JSON the version page polls (static/gestima/live.js)."""
        if not self.has_view_permission(request):
            return live_refused(403, "You may not view dataset versions.")
        try:
            version = get_object_or_404(DatasetVersion, pk=pk)
        except Http404:
            return live_refused(404, f"Dataset version {pk} does not exist.")
        return live_response(self._live(version))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = DatasetVersion.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra = {}
        if version is not None:
            extra = {
                "version": version,
                "can_export": self.has_export_dataset_permission(request) and not self._export_busy(version),
                "cost_projection": {
                    "scales": PROJECTION_SCALES,
                    "rows": dataset_version_cost_projection(version=version),
                },
                "charts": dataset_version_charts(version=version),
                **live_context(
                    state=self._live(version), url=reverse("admin:curation_datasetversion_live", args=[version.pk])
                ),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def export_view(self, request, pk):
        """The version page's "Export" button: the same service as the list action."""
        if not self.has_export_dataset_permission(request):
            raise PermissionDenied
        version = get_object_or_404(DatasetVersion, pk=pk)
        if request.method == "POST":
            try:
                dataset_version_export_request(version=version)
            except QueueUnavailable as exc:
                self.message_user(request, f"{version}: not exported. {exc}", messages.ERROR)
            except ExportError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{version}: export queued; the progress shows below.")
        return HttpResponseRedirect(reverse("admin:curation_datasetversion_change", args=[version.pk]))

    def download_view(self, request, pk, name):
        if not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        version = get_object_or_404(DatasetVersion, pk=pk)
        try:
            stream, size = export_file_open(version=version, name=name)
        except ExportError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:curation_datasetversion_change", args=[pk]))
        # FileResponse streams the file in blocks, from a folder or the bucket: a 1 GB train.jsonl never sits
        # in memory.
        filename = f"{slugify(version.dataset.name)}-v{version.number}-{name}"
        response = FileResponse(stream, as_attachment=True, filename=filename)
        response["Content-Length"] = size
        return response


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "training_price_per_1m",
        "inference_prices",
        "fine_tuned_prices",
        "encoding",
        "image_tokens",
        "supports_vision",
        "jobs_end_date",
        "shutdown_date",
        "active",
        "date_warning",
    ]
    list_filter = ["provider", "active"]
    readonly_fields = ["date_warning"]
    fieldsets = [
        (None, {"fields": ["name", "provider", "active"]}),
        (
            "Prices (USD per 1M tokens; empty = unknown)",
            {
                "fields": [
                    "training_price_per_1m",
                    ("input_price_per_1m", "output_price_per_1m"),
                    ("fine_tuned_input_price_per_1m", "fine_tuned_output_price_per_1m"),
                ]
            },
        ),
        (
            "Tokens",
            {"fields": ["encoding", "image_tokens", "patch_multiplier", "supports_vision", "max_tokens_per_example"]},
        ),
        ("Dates", {"fields": ["jobs_end_date", "shutdown_date", "date_warning"]}),
    ]

    @staticmethod
    def _pair(inp, out) -> str:
        return "unknown" if inp is None or out is None else f"${inp} / ${out}"

    @admin.display(description="Input / output")
    def inference_prices(self, obj):
        return self._pair(obj.input_price_per_1m, obj.output_price_per_1m)

    @admin.display(description="Fine-tuned input / output")
    def fine_tuned_prices(self, obj):
        return self._pair(obj.fine_tuned_input_price_per_1m, obj.fine_tuned_output_price_per_1m)

    @admin.display(description="Warning")
    def date_warning(self, obj):
        warning = base_model_date_warning(obj) if obj and obj.pk else ""
        return format_html('<span style="color:#ba2121">{}</span>', warning) if warning else ""
