"""Ground truth per part: trimmed-mean machine and setup times per (machine, operation), material from the drawing.

The rule (shared with the corpus generator): sort the n values, drop floor(fraction * n) at each end,
average the rest in exact Decimal arithmetic, round half-up to 2 decimals. High spread is flagged, not dropped.
"""

import math
import statistics
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction

from curation.models import Drawing, GroundTruth, MaterialAlias, ProductionRecord

_CENT = Decimal("0.01")


def trim_count(n: int, fraction: float) -> int:
    # Decimal(str(...)) so that 0.1 * 30 is exactly 3, not 2.9999... floored to 2.
    return int(math.floor(Decimal(str(fraction)) * n))


def trimmed_values(values, *, fraction: float) -> list[Decimal]:
    ordered = sorted(Decimal(str(v)) for v in values)
    k = trim_count(len(ordered), fraction)
    return ordered[k : len(ordered) - k] if k else ordered


def trimmed_mean(values, *, fraction: float) -> Decimal:
    """The trimmed mean of `values`, exact, rounded half-up to 2 decimals. Raises ValueError when empty."""
    kept = trimmed_values(values, fraction=fraction)
    if not kept:
        raise ValueError("no values to average")
    return (sum(kept, Decimal(0)) / len(kept)).quantize(_CENT, rounding=ROUND_HALF_UP)


def coefficient_of_variation(values) -> float | None:
    """Sample standard deviation / mean; None below two values or for a zero mean."""
    floats = [float(v) for v in values]
    if len(floats) < 2:
        return None
    mean = statistics.fmean(floats)
    return round(statistics.stdev(floats) / mean, 4) if mean else None


def _operation_order(item: dict) -> tuple:
    operation = item["operation"]
    order = ProductionRecord.OPERATIONS
    return (order.index(operation) if operation in order else len(order), operation, item["machine"])


def ground_truth_operations(records, *, fraction: float) -> list[dict]:
    """Per (machine, operation): trimmed means, n and CV (of the kept machine times), in target order.

    `records` are objects or dicts with machine, operation, machine_time_min_per_piece and setup_min.
    """
    groups = defaultdict(list)
    for record in records:
        get = record.get if isinstance(record, dict) else lambda name, r=record: getattr(r, name)
        groups[(get("machine"), get("operation"))].append(
            (Decimal(str(get("machine_time_min_per_piece"))), Decimal(str(get("setup_min"))))
        )
    operations = []
    for (machine, operation), pairs in groups.items():
        times = [p[0] for p in pairs]
        setups = [p[1] for p in pairs]
        operations.append(
            {
                "machine": machine,
                "operation": operation,
                "machine_time_min_per_piece": float(trimmed_mean(times, fraction=fraction)),
                "setup_min": float(trimmed_mean(setups, fraction=fraction)),
                "n": len(pairs),
                "trimmed": trim_count(len(pairs), fraction),
                "cv": coefficient_of_variation(trimmed_values(times, fraction=fraction)),
            }
        )
    return sorted(operations, key=_operation_order)


def material_normalise(material: str) -> str:
    """The normalised material for a written one (MaterialAlias), or the written one when unknown."""
    written = (material or "").strip()
    if not written:
        return ""
    alias = MaterialAlias.objects.filter(written__iexact=written).first()
    return alias.norm if alias else written


def ground_truth_target(ground_truth: GroundTruth) -> dict:
    """The technology_builder target this ground truth implies (material as printed on the drawing)."""
    operations = [
        {key: op[key] for key in ("machine", "operation", "machine_time_min_per_piece", "setup_min")}
        for op in ground_truth.operations
    ]
    machines = []
    for op in operations:
        if op["machine"] not in machines:
            machines.append(op["machine"])
    return {
        "part_number": ground_truth.part_number,
        "material": ground_truth.material,
        "machines": machines,
        "operations": operations,
    }


def _drawing_for(part_number: str) -> Drawing | None:
    drawings = Drawing.objects.filter(part_number=part_number)
    return (
        drawings.filter(status=Drawing.Status.RENDERED).order_by("-created_at").first()
        or drawings.order_by("-created_at").first()
    )


def _drawing_material(drawing: Drawing) -> str:
    # Read from the title block at render time, inside the memory-capped render process.
    return drawing.material


def ground_truth_compute(*, part_number: str) -> GroundTruth | None:
    """Compute (create or update) the ground truth of one part; None when it has no drawing or no records.

    Records of parts without a drawing stay stored but give no ground truth (nothing to train on yet).
    """
    drawing = _drawing_for(part_number)
    records = list(ProductionRecord.objects.filter(part_number=part_number))
    if drawing is None or not records:
        GroundTruth.objects.filter(part_number=part_number).delete()
        return None
    fraction = settings.GROUND_TRUTH_TRIM_FRACTION
    operations = ground_truth_operations(records, fraction=fraction)
    cvs = [op["cv"] for op in operations if op["cv"] is not None]
    max_cv = max(cvs) if cvs else None
    with transaction.atomic():
        ground_truth, created = GroundTruth.objects.select_for_update().get_or_create(part_number=part_number)
        values = {
            "operations": operations,
            "record_count": len(records),
            "max_cv": max_cv,
            "high_cv": max_cv is not None and max_cv > settings.GROUND_TRUTH_HIGH_CV,
        }
        if ground_truth.material_source != GroundTruth.MaterialSource.MANUAL:
            printed = _drawing_material(drawing)
            if printed:
                values.update(material=printed, material_source=GroundTruth.MaterialSource.DRAWING)
        changed = [name for name, value in values.items() if getattr(ground_truth, name) != value]
        # Unchanged ground truth is not written: computed_at then says when the numbers last changed.
        if changed or created:
            for name in changed:
                setattr(ground_truth, name, values[name])
            ground_truth.save()
    return ground_truth


def ground_truth_refresh(*, part_numbers=None) -> list[str]:
    """Recompute ground truth (all parts with records when None); return the parts whose target changed."""
    if part_numbers is None:
        part_numbers = ProductionRecord.objects.values_list("part_number", flat=True).distinct()
    changed = []
    for part_number in sorted(set(part_numbers)):
        before = GroundTruth.objects.filter(part_number=part_number).first()
        before_target = ground_truth_target(before) if before else None
        after = ground_truth_compute(part_number=part_number)
        after_target = ground_truth_target(after) if after else None
        if before_target != after_target:
            changed.append(part_number)
    return changed


def ground_truth_material_set(*, ground_truth: GroundTruth, material: str) -> GroundTruth:
    """Set the material by hand (scans have no text layer); later recomputes keep it."""
    ground_truth.material = material.strip()
    ground_truth.material_source = (
        GroundTruth.MaterialSource.MANUAL if ground_truth.material else GroundTruth.MaterialSource.NONE
    )
    ground_truth.save(update_fields=["material", "material_source", "computed_at"])
    return ground_truth
