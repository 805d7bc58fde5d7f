"""Examples in the admin: the review changelist, its filters, bulk decisions and the change form.

The review screen of one example is in `curation.admin.review`; its URLs are wired here.

Thin on purpose: every write is one call into `curation.services.review`, every read a selector; this
module turns requests into those calls and their errors into messages.
"""

import json
from functools import partial

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from curation import selectors
from curation.admin.review import REVIEW_PERMISSION, id_param, next_pending_view, review_fragment_view, review_view
from curation.admin.scan_material import scan_material_view, scans_view
from curation.admin.review_target import history_rows
from curation.models import Example
from curation.services.scans import scans_waiting_for_material
from curation.services.review import ReviewError, examples_approve, examples_reject

EXPORT_PERMISSION = "curation.export_dataset"


# --- Filters ------------------------------------------------------------------------------------------


def tag_filter(key: str) -> type[admin.SimpleListFilter]:
    """A filter over one key of the JSON tags; a tag may hold one value or a list (machine: [...])."""

    class TagFilter(admin.SimpleListFilter):
        title = f"tag: {key}"
        parameter_name = f"tag_{key}"

        def lookups(self, request, model_admin):
            # One query for all tag filters of the page, kept on the request for the others.
            if not hasattr(request, "_review_tag_values"):
                request._review_tag_values = selectors.example_tag_values(keys=list(settings.REVIEW_TAG_FILTERS))
            return [(value, value) for value in request._review_tag_values.get(key, [])]

        def queryset(self, request, queryset):
            value = self.value()
            if value is None:
                return queryset
            # A list tag is matched as a quoted element inside its JSON text, so "DMU" never matches "DMU 50";
            # both escapings, because SQLite keeps Django's \u escapes and PostgreSQL does not. An ASCII value
            # has one spelling, matched once: every term reads the row's JSON again, row by row.
            match = Q(**{f"tags__{key}": value})
            for quoted in dict.fromkeys([json.dumps(value), json.dumps(value, ensure_ascii=False)]):
                match |= Q(**{f"tags__{key}__icontains": quoted})
            return queryset.filter(match)

    TagFilter.__name__ = f"Tag{key.title().replace('_', '')}Filter"
    return TagFilter


class _RangeFilter(admin.SimpleListFilter):
    field = ""
    BUCKETS = [
        ("low", "below 0.5", {"lt": 0.5}),
        ("mid", "0.5 to 0.8", {"gte": 0.5, "lt": 0.8}),
        ("high", "0.8 and above", {"gte": 0.8}),
        ("none", "not set", {"isnull": True}),
    ]

    def lookups(self, request, model_admin):
        return [(slug, label) for slug, label, _ in self.BUCKETS]

    def queryset(self, request, queryset):
        for slug, _, bounds in self.BUCKETS:
            if self.value() == slug:
                return queryset.filter(**{f"{self.field}__{op}": bound for op, bound in bounds.items()})
        return queryset


class ConfidenceFilter(_RangeFilter):
    title = "confidence"
    parameter_name = "confidence"
    field = "confidence"


class QualityFilter(_RangeFilter):
    title = "quality score"
    parameter_name = "quality"
    field = "quality_score"


class GroundTruthChangedFilter(admin.SimpleListFilter):
    """Reviewed examples whose ground truth changed under them: their targets were kept, a choice waits."""

    title = "ground truth changed"
    parameter_name = "ground_truth_changed"

    def lookups(self, request, model_admin):
        return [("yes", "yes: keep yours or take the new"), ("no", "no")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(ground_truth_target="")
        if self.value() == "no":
            return queryset.filter(ground_truth_target="")
        return queryset


# --- The admin ----------------------------------------------------------------------------------------


class ExampleChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # The list shows none of the big JSON columns; loading and decoding them for a page of rows was most
        # of the database time. Actions that need them clear the deferral (see examples_jsonl_lines).
        return (
            super()
            .get_queryset(request, exclude_parameters)
            .defer("messages", "target", "tags", "ground_truth_basis", "ground_truth_target")
        )


@admin.register(Example)
class ExampleAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "review_link",
        "group_key",
        "task",
        "status_badge",
        "confidence",
        "quality_score",
        "reviewer",
        "reviewed_at",
        "is_near_duplicate",
        "source",
    ]
    list_display_links = ["id"]
    list_select_related = ["task", "reviewer"]
    list_filter = [
        "task",
        "status",
        GroundTruthChangedFilter,
        *[tag_filter(key) for key in settings.REVIEW_TAG_FILTERS],
        ConfidenceFilter,
        QualityFilter,
        ("reviewer", admin.RelatedOnlyFieldListFilter),
        "is_near_duplicate",
        "source",
    ]
    search_fields = ["group_key", "drawing__part_number"]
    search_help_text = "Part number (group key or the drawing's part number)."
    # 50 rows: the list is for finding and bulk-deciding (select all works across pages); rendering the rows
    # is most of the page time, and the review screen is where examples are read.
    list_per_page = 50
    actions = ["approve_selected", "reject_selected", "download_jsonl"]
    change_form_template = "admin/curation/example/change_form.html"
    change_list_template = "admin/curation/example/change_list.html"
    # Status, target and the review fields change only through the review screen (services: audited,
    # validated); the change form edits what is not audited: scores and tags.
    readonly_fields = [
        "task",
        "drawing",
        "group_key",
        "source",
        "status_badge",
        "reviewer",
        "reviewed_at",
        "rejection_reason",
        "review_note",
        "target_pretty",
        "schema_version",
        "content_hash",
        "is_near_duplicate",
        "near_duplicate_of",
        "messages",
        "created_at",
        "updated_at",
        "change_history",
        "touched_by_person",
        "ground_truth_basis",
        "ground_truth_target",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "task",
                    "drawing",
                    "group_key",
                    "source",
                    "status_badge",
                    "reviewer",
                    "reviewed_at",
                    "rejection_reason",
                    "review_note",
                ]
            },
        ),
        (
            "Target",
            {
                "fields": [
                    "target_pretty",
                    "schema_version",
                    "touched_by_person",
                    "ground_truth_basis",
                    "ground_truth_target",
                ]
            },
        ),
        (
            "Scores and tags",
            {"fields": ["quality_score", "confidence", "tags", "is_near_duplicate", "near_duplicate_of"]},
        ),
        ("Messages", {"classes": ["collapse"], "fields": ["messages", "content_hash", "created_at", "updated_at"]}),
        ("History", {"fields": ["change_history"]}),
    ]

    # Examples are made by the build step, the import and estimate corrections: a hand-made one would
    # skip schema validation and content hashing.
    def has_add_permission(self, request):
        return False

    def get_changelist(self, request, **kwargs):
        return ExampleChangeList

    def save_model(self, request, obj, form, change):
        # Only the columns the form edits: a full save would write back the status and target read a moment
        # ago and could undo a decision made meanwhile on the review screen.
        if change and form.changed_data:
            obj.save(update_fields=[*form.changed_data, "updated_at"])
        elif not change:
            super().save_model(request, obj, form, change)

    def has_review_permission(self, request):
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_export_permission(self, request):
        return request.user.has_perm(EXPORT_PERMISSION)

    # --- columns ---

    def action_checkbox(self, obj):
        # Same markup as Django's, without a form widget rendered through the template engine per row:
        # that was a third of the changelist's time at 50 rows.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            str(obj),
        )

    @admin.display(description="Review")
    def review_link(self, obj):
        return format_html(
            '<a class="button" href="{}">Review</a>', reverse("admin:curation_example_review", args=[obj.pk])
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="review-status review-status-{}">{}</span>', obj.status, obj.get_status_display()
        )

    @admin.display(description="Target")
    def target_pretty(self, obj):
        try:
            text = json.dumps(json.loads(obj.target), ensure_ascii=False, indent=2)
        except (TypeError, ValueError):
            text = obj.target
        return format_html('<pre class="review-pre">{}</pre>', text)

    @admin.display(description="Changes (newest first)")
    def change_history(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        changes = selectors.example_history(example=obj, limit=settings.REVIEW_HISTORY_LIMIT)
        if not changes:
            return "No changes yet."
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td>{}</td><td><ul class="review-changes">{}</ul></td><td>{}</td></tr>',
            (
                (
                    row["at"].strftime("%Y-%m-%d %H:%M:%S"),
                    row["user"] or "system",
                    row["field"],
                    format_html_join("", "<li>{}</li>", ((line,) for line in row["lines"])),
                    row["note"],
                )
                for row in history_rows(changes)
            ),
        )
        return format_html(
            '<table class="review-history"><thead><tr><th>When</th><th>Who</th><th>Field</th><th>Change</th>'
            "<th>Note</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- changelist ---

    def changelist_view(self, request, extra_context=None):
        task_id = id_param(request.GET.get("task__id__exact"))
        counts = selectors.example_status_counts(task_id=task_id)
        params = request.GET.copy()
        params.pop("p", None)
        status_links = []
        for value, label in Example.Status.choices:
            params["status__exact"] = value
            status_links.append(
                {
                    "value": value,
                    "label": label,
                    "count": counts[value],
                    "url": "?" + params.urlencode(),
                    "active": request.GET.get("status__exact") == value,
                }
            )
        next_pending = reverse("admin:curation_example_next_pending")
        if task_id:
            next_pending += "?" + urlencode({"task": task_id})
        extra_context = {
            **(extra_context or {}),
            "status_links": status_links,
            "status_total": sum(counts.values()),
            "next_pending_url": next_pending,
            "scans_waiting": scans_waiting_for_material().count() if self.has_review_permission(request) else 0,
        }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description="Approve selected examples", permissions=["review"])
    def approve_selected(self, request, queryset):
        result = examples_approve(examples=queryset, user=request.user)
        self.message_user(
            request,
            f"Approved {result.changed} example(s); {result.skipped} skipped (already approved or changed meanwhile).",
            messages.SUCCESS,
        )

    @admin.action(description="Reject selected examples (asks for a reason)", permissions=["review"])
    def reject_selected(self, request, queryset):
        # Like delete_selected: the first POST shows the confirmation page, the second (post=yes) acts.
        error = ""
        reason = request.POST.get("reason", "")
        if request.POST.get("post") == "yes":
            try:
                result = examples_reject(examples=queryset, user=request.user, reason=reason)
            except ReviewError as exc:
                error = str(exc)
            else:
                self.message_user(
                    request,
                    f"Rejected {result.changed} example(s); {result.skipped} skipped "
                    "(already rejected or changed meanwhile).",
                    messages.SUCCESS,
                )
                return None
        select_across = request.POST.get("select_across") == "1"
        shown = list(queryset.select_related("task")[:50])
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject examples",
            "opts": self.model._meta,
            "queryset": shown,
            "count": queryset.count(),
            "selected_ids": [str(pk) for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)],
            "select_across": select_across,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "reason": reason,
            "error": error,
            "form_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/curation/example/reject_selected_confirmation.html", context)

    @admin.action(description="Download selected as JSONL (managers)", permissions=["export"])
    def download_jsonl(self, request, queryset):
        lines = selectors.examples_jsonl_lines(examples=queryset)
        response = HttpResponse("".join(lines), content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="examples.jsonl"'
        return response

    # --- review screen (views in curation.admin.review) ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("next-pending/", view(partial(next_pending_view, self)), name="curation_example_next_pending"),
            path("<int:object_id>/review/", view(partial(review_view, self)), name="curation_example_review"),
            path(
                "<int:object_id>/review/fragment/",
                view(partial(review_fragment_view, self)),
                name="curation_example_review_fragment",
            ),
            path("scans/", view(partial(scans_view, self)), name="curation_example_scans"),
            path(
                "scans/<int:drawing_id>/material/",
                view(partial(scan_material_view, self)),
                name="curation_example_scan_material",
            ),
            *super().get_urls(),
        ]
