"""Admin for drawings: list with thumbnails, upload of several PDFs, page images inline, "Render again".

Page images are served by a staff-only view (drawings are confidential): `admin:curation_page_image`.
Thin: the upload view and the action are each one service call.
"""

import io

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from PIL import Image

from curation.models import Drawing, DrawingPage
from curation.services.drawing_uploads import drawings_ingest_many
from curation.services.drawings import RENDER_ACTIVE, drawing_render_again, drawing_render_progress, drawings_delete
from gestima.live import live_context, live_refused, live_response, live_state, progress_html
from gestima.queues import QueueUnavailable
from gestima.storage import storage_stream

UPLOAD_PERMISSION = "curation.add_drawing"
RENDER_PERMISSION = "curation.render_drawing"
THUMB_PX = 160
# A page image whose URL names its content hash never changes under that URL: the browser may keep it for
# good. Without the hash (or with an old one after a re-render) it is revalidated soon, by its ETag.
IMMUTABLE_CACHE = "private, max-age=31536000, immutable"
SHORT_CACHE = "private, max-age=300"


def render_live_state(drawing: Drawing) -> dict:
    """What the drawing's page moves while it waits for a worker or renders (static/gestima/live.js)."""
    progress = drawing_render_progress(drawing)
    return live_state(
        status=drawing.status,
        active=drawing.status in RENDER_ACTIVE,
        fields={"render": progress.text},
        bars={"render": progress.percent},
    )


def page_image_url(page: DrawingPage) -> str:
    """The staff-only URL of a page image, carrying its content hash so the browser can cache it for good."""
    return reverse("admin:curation_page_image", args=[page.pk]) + f"?v={page.sha256[:16]}"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """`<input type=file multiple>` that only asks for at least one file.

    Each file is judged on its own by the ingest service (empty, too large, not a PDF), never here: Django's
    per-file checks would make the whole form invalid for one refused file and store none of the good ones.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "application/pdf,.pdf"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = [item for item in (data if isinstance(data, (list, tuple)) else [data]) if item]
        if not files and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


class DrawingUploadForm(forms.Form):
    files = MultipleFileField(
        label="PDF drawings",
        help_text=f"Choose one or more PDF files (at most {settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB each). "
        "A file uploaded before is recognised by its content and not stored twice.",
    )


class KindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("vector", "vector (text layer)"), ("scanned", "scanned"), ("unknown", "not rendered yet")]

    def queryset(self, request, queryset):
        value = {"vector": True, "scanned": False, "unknown": None}.get(self.value(), "all")
        if value == "all":
            return queryset
        return queryset.filter(has_text_layer__isnull=True) if value is None else queryset.filter(has_text_layer=value)


class DrawingPageInline(admin.TabularInline):
    model = DrawingPage
    extra = 0
    can_delete = False
    fields = ["number", "preview", "size", "format", "bytes", "phash"]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request, obj=None):
        return False  # pages come from rendering only

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="image")
    def preview(self, page):
        url = reverse("admin:curation_page_image", args=[page.pk])
        return format_html(
            '<a href="{}" target="_blank" title="Open the full image">'
            '<img src="{}" alt="page {}" class="drawing-page-image" loading="lazy"></a>',
            url,
            url,
            page.number,
        )

    @admin.display(description="pixels")
    def size(self, page):
        return f"{page.width} × {page.height}"


@admin.register(Drawing)
class DrawingAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "part_number",
        "original_name",
        "status_text",
        "page_count",
        "kind",
        "repaired",
        "warning_count",
        "created_at",
    ]
    list_display_links = ["thumbnail", "part_number"]
    list_filter = ["status", KindFilter, "repaired", "created_at"]
    search_fields = ["part_number", "original_name", "sha256"]
    date_hierarchy = "created_at"
    list_per_page = 50
    actions = ["render_again"]
    inlines = [DrawingPageInline]
    change_list_template = "admin/curation/drawing/change_list.html"
    change_form_template = "admin/curation/drawing/change_form.html"
    fields = [
        "part_number",
        "status",
        "render_progress",
        "error",
        "page_problems",
        "original_name",
        "pdf_link",
        "page_count",
        "kind",
        "repaired",
        "warning_count",
        "warnings",
        "sha256",
        "size_bytes",
        "uploaded_by",
        "created_at",
        "rendered_at",
    ]
    readonly_fields = [f for f in fields if f != "part_number"]

    class Media:
        css = {"all": ["curation/drawings.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("pages")

    def has_add_permission(self, request):
        return False  # drawings arrive through the upload view (several files, dedup, checks)

    def has_render_permission(self, request):
        return request.user.has_perm(RENDER_PERMISSION)

    # --- columns ---

    @admin.display(description="")
    def thumbnail(self, drawing):
        pages = list(drawing.pages.all())
        if not pages:
            return "—"
        url = reverse("admin:curation_page_image", args=[pages[0].pk]) + "?size=thumb"
        return format_html('<img src="{}" alt="" class="drawing-thumb" loading="lazy">', url)

    @admin.display(description="status", ordering="status")
    def status_text(self, drawing):
        if drawing.status == Drawing.Status.FAILED:
            return format_html(
                '<span class="drawing-status drawing-failed">failed</span><br><small>{}</small>', drawing.error
            )
        if drawing.page_problems:
            return format_html(
                '<span class="drawing-status drawing-{}">{}</span><br><small>{}</small>',
                drawing.status,
                drawing.get_status_display().lower(),
                drawing.page_problems,
            )
        return format_html(
            '<span class="drawing-status drawing-{}">{}</span>', drawing.status, drawing.get_status_display().lower()
        )

    @admin.display(description="Render progress")
    def render_progress(self, drawing):
        progress = drawing_render_progress(drawing)
        return progress_html(text=progress.text, percent=progress.percent, name="render")

    @admin.display(description="kind", ordering="has_text_layer")
    def kind(self, drawing):
        if drawing.has_text_layer is None:
            return "—"
        return "vector" if drawing.has_text_layer else "scanned"

    @admin.display(description="PDF")
    def pdf_link(self, drawing):
        url = reverse("admin:curation_drawing_pdf", args=[drawing.pk])
        return format_html('<a href="{}">{} ({} bytes)</a>', url, drawing.original_name, drawing.size_bytes)

    # Deleting goes through the service so the PDF and page image files go too (Django leaves them).
    def delete_model(self, request, obj):
        drawings_delete(drawings=[obj])

    def delete_queryset(self, request, queryset):
        drawings_delete(drawings=list(queryset))

    # --- action ---

    @admin.action(description="Render again", permissions=["render"])
    def render_again(self, request, queryset):
        try:
            count = drawing_render_again(drawings=queryset)
        except QueueUnavailable as exc:
            self.message_user(
                request,
                f"{exc} The selected drawings are marked to render again and will be queued when it is back.",
                messages.WARNING,
            )
            return
        skipped = queryset.count() - count
        note = f" ({skipped} skipped: still waiting or rendering)" if skipped else ""
        self.message_user(request, f"{count} drawing(s) queued to render again{note}.", messages.SUCCESS)

    # --- extra views ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("upload/", view(self.upload_view), name="curation_drawing_upload"),
            # cacheable: admin_view still demands a staff login, but without never_cache, which would
            # replace the view's own "private, max-age=86400" with no-store (the permission is checked inside).
            path("page/<int:page_id>/image/", view(self.page_image_view, cacheable=True), name="curation_page_image"),
            path("<int:drawing_id>/pdf/", view(self.pdf_view), name="curation_drawing_pdf"),
            path("<int:drawing_id>/live.json", view(self.live_view), name="curation_drawing_live"),
        ] + super().get_urls()

    def live_view(self, request, drawing_id):
        """The JSON the drawing's page polls while it is queued or rendering (static/gestima/live.js)."""
        if not self.has_view_permission(request):
            return live_refused(403, "You may not view drawings.")
        drawing = Drawing.objects.filter(pk=drawing_id).first()
        if drawing is None:
            return live_refused(404, f"Drawing {drawing_id} does not exist.")
        return live_response(render_live_state(drawing))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        drawing = Drawing.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra = {}
        if drawing is not None:
            extra = live_context(
                state=render_live_state(drawing), url=reverse("admin:curation_drawing_live", args=[drawing.pk])
            )
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def upload_view(self, request):
        # Checked here, not only by hiding the button: a reviewer posting the form is refused.
        if not request.user.has_perm(UPLOAD_PERMISSION):
            raise PermissionDenied
        outcomes = None
        # Bound on every POST: a post without files says so instead of showing a blank form.
        form = DrawingUploadForm(request.POST, request.FILES) if request.method == "POST" else DrawingUploadForm()
        if request.method == "POST" and form.is_valid():
            files = [(upload.name, upload) for upload in form.cleaned_data["files"]]
            outcomes, queue_error = drawings_ingest_many(files=files, uploaded_by=request.user)
            counts = {
                verdict: sum(o.verdict == verdict for o in outcomes) for verdict in ("new", "existing", "rejected")
            }
            summary = f"{counts['new']} new, {counts['existing']} already uploaded, {counts['rejected']} rejected."
            self.message_user(request, summary, messages.WARNING if counts["rejected"] else messages.SUCCESS)
            for outcome in outcomes:
                if outcome.verdict == "rejected":
                    self.message_user(request, f"{outcome.name} was not stored: {outcome.reason}.", messages.ERROR)
            if queue_error:
                self.message_user(
                    request,
                    f"{queue_error} The new drawings are saved and will render when it is back.",
                    messages.WARNING,
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload drawings",
            "form": form,
            "outcomes": outcomes,
            "max_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024),
        }
        return TemplateResponse(request, "admin/curation/drawing/upload.html", context)

    def page_image_view(self, request, page_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        page = get_object_or_404(DrawingPage, pk=page_id)
        etag = f'"{page.sha256}{"-thumb" if request.GET.get("size") == "thumb" else ""}"'
        if request.headers.get("If-None-Match") == etag:
            return HttpResponseNotModified()
        try:
            handle = page.image.open("rb")
        except (FileNotFoundError, ValueError):
            raise Http404("The page image file is missing; render the drawing again.")
        if request.GET.get("size") == "thumb":
            with handle:
                image = Image.open(handle)
                image.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))  # JPEG decodes at a fraction: fast
                image.thumbnail((THUMB_PX, THUMB_PX))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, "JPEG", quality=80)
            response = HttpResponse(buffer.getvalue(), content_type="image/jpeg")
        else:
            response = FileResponse(handle, content_type=f"image/{page.format}")
        # Private: the images are confidential (no shared cache). Every request that reaches this view is
        # checked above; caching only spares the requests.
        hashed = bool(page.sha256) and request.GET.get("v") == page.sha256[:16]
        response["Cache-Control"] = IMMUTABLE_CACHE if hashed else SHORT_CACHE
        response["ETag"] = etag
        return response

    def pdf_view(self, request, drawing_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        drawing = get_object_or_404(Drawing, pk=drawing_id)
        try:
            if not drawing.file:
                raise FileNotFoundError(drawing.pk)
            # Streamed from the storage (a folder or the bucket): a 50 MB drawing never sits in memory.
            handle = storage_stream(drawing.file.storage, drawing.file.name)
        except (FileNotFoundError, ValueError):
            raise Http404("The PDF file is missing.")
        response = FileResponse(handle, content_type="application/pdf", filename=drawing.original_name)
        response["Cache-Control"] = "private, no-store"
        return response
