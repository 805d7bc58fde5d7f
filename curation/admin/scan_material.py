"""Scans without a text layer on the review side: the list of scans waiting for a material, and the page where the
reviewer reads it off the drawing and the example is built at once. Thin: one service call per POST."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from curation import selectors
from curation.models import Drawing, GroundTruth
from curation.services.scans import ScanMaterialError, scan_material_enter, scans_waiting_for_material

REVIEW_PERMISSION = "curation.review_example"


def scans_view(model_admin, request):
    if not request.user.has_perm(REVIEW_PERMISSION):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Scans waiting for a material",
        "opts": model_admin.model._meta,
        "drawings": list(scans_waiting_for_material()[:200]),
    }
    return TemplateResponse(request, "admin/curation/example/scans.html", context)


def scan_material_view(model_admin, request, drawing_id):
    # Reviewer permission, checked here for the page and its POST alike: the material decides the example's target.
    if not request.user.has_perm(REVIEW_PERMISSION):
        raise PermissionDenied
    drawing = get_object_or_404(Drawing, pk=drawing_id)
    material = ""
    if request.method == "POST":
        material = request.POST.get("material", "")
        try:
            example = scan_material_enter(drawing=drawing, material=material)
        except ScanMaterialError as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        else:
            model_admin.message_user(
                request,
                f"Material {material.strip()} saved for part {drawing.part_number}; "
                f"example #{example.pk} is built and waits for review.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:curation_example_review", args=[example.pk]))
    ground_truth = GroundTruth.objects.filter(part_number=drawing.part_number).first() if drawing.part_number else None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Material of drawing {drawing.part_number or drawing.original_name}",
        "is_nav_sidebar_enabled": False,
        "opts": model_admin.model._meta,
        "drawing": drawing,
        "ground_truth": ground_truth,
        "pages": [
            {"page": page, "url": reverse("admin:curation_page_image", args=[page.pk])}
            for page in drawing.pages.order_by("number")
        ],
        "material": material or (ground_truth.material if ground_truth else ""),
        "materials": selectors.target_editor_choices()["material"],
    }
    return TemplateResponse(request, "admin/curation/example/scan_material.html", context)
