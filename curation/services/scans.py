"""Scans without a text layer: the reviewer reads the material off the drawing and the example is built at once.

A vector drawing's material is read from its title block at render time; a scan has none to read, so its part's
ground truth waits without a material and the build skips it. Entering the material here sets it by hand on the
ground truth (kept over later recomputes) and runs the same build as everywhere else for this one drawing.
"""

from django.db import transaction

from curation.models import Drawing, Example, GroundTruth, Task
from curation.services.examples import examples_build
from curation.services.ground_truth import ground_truth_compute, ground_truth_material_set
from curation.task_presets import DRAWING_TASK_SLUG


class ScanMaterialError(ValueError):
    """The material cannot be entered for this drawing; the message says why, for the reviewer."""


def scans_waiting_for_material():
    """Rendered scans whose part has production records (a ground truth) but no material yet."""
    waiting = GroundTruth.objects.filter(material="").values("part_number")
    return Drawing.objects.filter(
        status=Drawing.Status.RENDERED, has_text_layer=False, part_number__in=waiting
    ).order_by("pk")


def scan_material_enter(*, drawing: Drawing, material: str) -> Example:
    """Set the material of the drawing's part by hand and build its example; the built (or existing) example.

    ScanMaterialError when the material is empty, the drawing has no part number or production records, or the
    build skips it (its reason is passed on).
    """
    material = (material or "").strip()
    if not material:
        raise ScanMaterialError("Enter the material as printed on the drawing.")
    if drawing.status != Drawing.Status.RENDERED:
        raise ScanMaterialError(f"The drawing is not rendered yet (status {drawing.get_status_display()}).")
    if not drawing.part_number:
        raise ScanMaterialError("The drawing has no part number: a manager sets it on the drawing first.")
    task = Task.objects.filter(slug=DRAWING_TASK_SLUG).first()
    if task is None:
        raise ScanMaterialError(f"There is no {DRAWING_TASK_SLUG} task to build the example for.")
    with transaction.atomic():
        ground_truth = GroundTruth.objects.select_for_update().filter(
            part_number=drawing.part_number
        ).first() or ground_truth_compute(part_number=drawing.part_number)
        if ground_truth is None:
            raise ScanMaterialError(
                f"Part {drawing.part_number} has no production records: no ground truth to build on."
            )
        ground_truth_material_set(ground_truth=ground_truth, material=material)
        report = examples_build(task=task, drawings=Drawing.objects.filter(pk=drawing.pk))
    if report.skipped:
        raise ScanMaterialError(f"Material saved, but no example was built: {report.skipped[0]['reason']}.")
    example = Example.objects.filter(task=task, drawing=drawing, source=Example.Source.BUILT).first()
    if example is None:
        raise ScanMaterialError("Material saved; an example with the same content already exists.")
    return example
