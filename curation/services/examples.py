"""Built examples: made from rendered drawings + ground truth (the one chat about a drawing, the one content
hash of an example), and kept up with the ground truth (rebuilt while untouched, else flagged for a person).
"""

import hashlib
import json
from dataclasses import dataclass, field

from django.db import transaction

from curation.models import Drawing, Example, GroundTruth, Task
from curation.openai_format import MAX_IMAGES_PER_EXAMPLE, page_ref
from curation.services.audit import example_change_record
from curation.services.example_flags import examples_flag_near_duplicates
from curation.services.ground_truth import ground_truth_compute, ground_truth_target, material_normalise
from curation.services.tasks import TargetInvalid, target_validate


def content_hash(messages, target_text: str) -> str:
    """Same messages and target -> same hash: exact duplicates within a task are refused by a constraint.

    The one hash of an example's content (built, imported, a correction of an estimate): stored hashes are
    looked up with it, so it never changes its JSON spelling (non-ASCII kept as UTF-8, keys sorted).
    """
    return hashlib.sha256(json.dumps([messages, target_text], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _target_text(target) -> str:
    return target if isinstance(target, str) else json.dumps(target, ensure_ascii=False)


class _Fields(dict):
    # A template field the example cannot fill stays visible instead of failing the build.
    def __missing__(self, key):
        return "{" + key + "}"


# ------------------------------------------------------------------------------------------ build


@dataclass
class BuildReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list = field(default_factory=list)  # [{"drawing_id", "part_number", "reason"}]
    near_duplicates: int = 0
    flagged: int = 0  # reviewed examples whose ground truth changed: waiting for the reviewer's choice

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.skipped)} drawings skipped, {self.near_duplicates} near-duplicates flagged, "
            f"{self.flagged} reviewed examples flagged (ground truth changed; their targets kept)"
        )


def drawing_messages(*, task: Task, drawing: Drawing, prompt_text: str = "") -> list[dict]:
    """The chat a model is sent about a drawing: system prompt, the task's user text, the first pages as page
    references (embedded as images when sent). Examples and corrections carry the task's compact prompt (its full
    one when it has none); an estimate passes the prompt its model was evaluated with."""
    limit = max(0, min(task.max_images, MAX_IMAGES_PER_EXAMPLE))
    pages = list(drawing.pages.order_by("number")[:limit]) if task.uses_images else []
    text = (task.user_prompt_template or "Drawing of part {part_number}.").format_map(
        _Fields(part_number=drawing.part_number, page_count=drawing.page_count or len(pages))
    )
    content = [{"type": "text", "text": text}] + [
        {"type": "image_url", "image_url": {"url": page_ref(page.pk), "detail": task.image_detail}} for page in pages
    ]
    return [
        {"role": "system", "content": prompt_text or task.compact_prompt or task.system_prompt},
        {"role": "user", "content": content},
    ]


def _drawing_tags(*, drawing: Drawing, ground_truth: GroundTruth, target: dict) -> dict:
    # Industry is not known for drawings (the title block names the customer, not its trade): left out,
    # a reviewer may add it. Scan and high-CV are tags so evaluation can report them separately.
    return {
        "machine": target["machines"],
        "operation": sorted({op["operation"] for op in target["operations"]}),
        "material": material_normalise(ground_truth.material),
        "scanned": bool(drawing.is_scan),
        "high_cv": bool(ground_truth.high_cv),
    }


def _built_example(*, task: Task, drawing: Drawing) -> Example | None:
    return Example.objects.filter(task=task, drawing=drawing, source=Example.Source.BUILT).first()


def examples_build(*, task: Task, drawings=None) -> BuildReport:
    """One pending example per rendered drawing with ground truth; re-running changes nothing.

    A drawing without production records, without a material (a scan: enter it on the ground truth) or
    whose target fails the task schema is skipped and listed with the reason.
    """
    report = BuildReport()
    if drawings is None:
        drawings = Drawing.objects.filter(status=Drawing.Status.RENDERED)
    if hasattr(drawings, "order_by"):
        # Oldest drawing first: of two near-duplicates, the later upload is the one flagged.
        drawings = drawings.order_by("pk").prefetch_related("pages")
    for drawing in drawings:
        reason = ""
        if drawing.status != Drawing.Status.RENDERED:
            reason = f"not rendered (status {drawing.status})"
        elif not drawing.part_number:
            reason = "no part number: set it on the drawing"
        if reason:
            report.skipped.append({"drawing_id": drawing.pk, "part_number": drawing.part_number, "reason": reason})
            continue
        ground_truth = GroundTruth.objects.filter(part_number=drawing.part_number).first()
        if ground_truth is None:
            ground_truth = ground_truth_compute(part_number=drawing.part_number)
        if ground_truth is None:
            report.skipped.append(
                {
                    "drawing_id": drawing.pk,
                    "part_number": drawing.part_number,
                    "reason": "no production records for this part: no ground truth",
                }
            )
            continue
        if not ground_truth.material:
            report.skipped.append(
                {
                    "drawing_id": drawing.pk,
                    "part_number": drawing.part_number,
                    "reason": "no material (scan without text layer?): enter it on the ground truth",
                }
            )
            continue
        target = ground_truth_target(ground_truth)
        target_text = _target_text(target)
        try:
            target_validate(task=task, target_text=target_text)
        except TargetInvalid as exc:
            report.skipped.append(
                {
                    "drawing_id": drawing.pk,
                    "part_number": drawing.part_number,
                    "reason": f"target does not fit the task schema: {exc}",
                }
            )
            continue
        messages = drawing_messages(task=task, drawing=drawing)
        existing = _built_example(task=task, drawing=drawing)
        if existing is not None:
            updated = False
            if existing.messages != messages:
                # Pages rendered again (new page ids) or the task's prompts edited: the reviewed target
                # still holds, so the prompt side is refreshed without sending the example back to review.
                existing.messages = messages
                existing.content_hash = content_hash(messages, existing.target)
                existing.save(update_fields=["messages", "content_hash", "updated_at"])
                updated = True
            outcome = example_ground_truth_sync(example=existing, target_text=target_text)
            report.flagged += outcome == GroundTruthSync.FLAGGED
            updated = updated or outcome == GroundTruthSync.REBUILT
            report.updated += updated
            report.unchanged += not updated
            continue
        digest = content_hash(messages, target_text)
        if Example.objects.filter(task=task, content_hash=digest).exists():
            report.unchanged += 1
            continue
        Example.objects.create(
            task=task,
            drawing=drawing,
            messages=messages,
            target=target_text,
            schema_version=task.schema_version,
            source=Example.Source.BUILT,
            tags=_drawing_tags(drawing=drawing, ground_truth=ground_truth, target=target),
            group_key=drawing.part_number,
            content_hash=digest,
            ground_truth_basis=target_text,
        )
        report.created += 1
    report.near_duplicates = examples_flag_near_duplicates(task=task)
    return report


# ------------------------------------------------------------------------------------------ ground truth changes


class GroundTruthSync:
    """What `example_ground_truth_sync` did with a target the ground truth now implies."""

    UNCHANGED = "unchanged"
    REBUILT = "rebuilt"  # nobody had touched the example: its target follows the ground truth
    FLAGGED = "flagged"  # a person owns the target: kept, the new ground truth waits for their choice


def example_machine_may_rewrite(example: Example) -> bool:
    """True while no person has decided on or edited the example: only then may a machine rewrite its target."""
    return not example.touched_by_person and example.status == Example.Status.PENDING


def _number_text(value) -> str:
    return "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def target_changes_describe(*, before: str, after: str) -> str:
    """What differs between two targets, for a person: "turning on NZX 2000: time was 6, now 9 min/pc; ...".

    Technology targets are compared per (machine, operation) and material; any other target as text.
    """
    try:
        old, new = json.loads(before), json.loads(after)
    except (TypeError, ValueError):
        old = new = None
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"was {before[:200]}, now {after[:200]}"
    parts = []
    if old.get("material") != new.get("material"):
        parts.append(f"material was {old.get('material') or '–'}, now {new.get('material') or '–'}")

    def rows(target):
        operations = target.get("operations") if isinstance(target.get("operations"), list) else []
        return {(op.get("machine"), op.get("operation")): op for op in operations if isinstance(op, dict)}

    old_rows, new_rows = rows(old), rows(new)
    for key in [*old_rows, *[k for k in new_rows if k not in old_rows]]:
        label = f"{key[1]} on {key[0]}"
        if key not in new_rows:
            parts.append(f"{label}: removed")
            continue
        if key not in old_rows:
            row = new_rows[key]
            parts.append(
                f"{label}: added ({_number_text(row.get('machine_time_min_per_piece'))} min/pc, "
                f"setup {_number_text(row.get('setup_min'))} min)"
            )
            continue
        for name, what, unit in (("machine_time_min_per_piece", "time", "min/pc"), ("setup_min", "setup", "min")):
            if old_rows[key].get(name) != new_rows[key].get(name):
                parts.append(
                    f"{label}: {what} was {_number_text(old_rows[key].get(name))}, "
                    f"now {_number_text(new_rows[key].get(name))} {unit}"
                )
    if not parts and old != new:
        parts.append("machines or order changed" if old.get("machines") != new.get("machines") else "details changed")
    return "; ".join(parts)


def example_ground_truth_sync(*, example: Example, target_text: str, user=None, note: str = "") -> str:
    """The ground truth of the example's part now implies `target_text`; the one place a machine path (build,
    CSV import, ground-truth recompute) may touch a built example's target. Returns a GroundTruthSync value.

    A move is measured against the target the ground truth implied before (`ground_truth_basis`), never against
    the example's own target: a reviewer's edit is not a ground-truth change. An untouched example follows the
    ground truth; an example a person decided on or edited keeps its target and is flagged with the new one.
    """
    with transaction.atomic():
        example = Example.objects.select_for_update().get(pk=example.pk)
        basis = example.ground_truth_basis or example.target
        if target_text == basis:
            if example.ground_truth_target:
                # The ground truth went back to what the example was built from: nothing left to choose.
                cleared = example.ground_truth_target
                example.ground_truth_target = ""
                example.review_note = "Ground truth back to what the example was built from: nothing to choose."
                example.save(update_fields=["ground_truth_target", "review_note", "updated_at"])
                example_change_record(
                    example=example,
                    user=user,
                    field="ground_truth",
                    before=cleared,
                    after=basis,
                    note=example.review_note,
                )
            return GroundTruthSync.UNCHANGED
        if example.target == target_text:
            # The person's target already says what the new ground truth says: nothing to choose.
            example.ground_truth_basis, example.ground_truth_target = target_text, ""
            example.save(update_fields=["ground_truth_basis", "ground_truth_target", "updated_at"])
            return GroundTruthSync.UNCHANGED
        changes = target_changes_describe(before=basis, after=target_text)
        if example_machine_may_rewrite(example):
            before_target = example.target
            example.target = target_text
            example.ground_truth_basis = target_text
            example.ground_truth_target = ""
            example.content_hash = content_hash(example.messages, target_text)
            example.review_note = note or f"Ground truth changed: {changes}. Target rebuilt."
            example.save(
                update_fields=[
                    "target",
                    "ground_truth_basis",
                    "ground_truth_target",
                    "content_hash",
                    "review_note",
                    "updated_at",
                ]
            )
            example_change_record(
                example=example,
                user=user,
                field="target",
                before=before_target,
                after=target_text,
                note=example.review_note,
            )
            return GroundTruthSync.REBUILT
        if example.ground_truth_target == target_text:
            return GroundTruthSync.UNCHANGED  # flagged before, for this very ground truth
        before_waiting = example.ground_truth_target or basis
        example.ground_truth_target = target_text
        example.review_note = (
            f"Ground truth changed: {changes}. Your target is kept: keep it or take the new ground truth."
        )
        example.save(update_fields=["ground_truth_target", "review_note", "updated_at"])
        example_change_record(
            example=example,
            user=user,
            field="ground_truth",
            before=before_waiting,
            after=target_text,
            note=example.review_note,
        )
        return GroundTruthSync.FLAGGED


@dataclass
class RebuildReport:
    rebuilt: list = field(default_factory=list)  # examples whose target now follows the new ground truth
    flagged: list = field(default_factory=list)  # examples a person owns: target kept, new ground truth waits

    def summary(self) -> str:
        return (
            f"{len(self.rebuilt)} example targets rebuilt, {len(self.flagged)} reviewed examples flagged "
            "(ground truth changed; their targets kept)"
        )


def examples_rebuild_targets(*, part_numbers, user=None) -> RebuildReport:
    """Bring the built examples of these parts up to their ground truth (see example_ground_truth_sync)."""
    report = RebuildReport()
    examples = Example.objects.filter(
        group_key__in=list(part_numbers), source=Example.Source.BUILT, drawing__isnull=False
    ).select_related("task")
    for example in examples:
        ground_truth = GroundTruth.objects.filter(part_number=example.group_key).first()
        if ground_truth is None or not ground_truth.material:
            continue
        target_text = _target_text(ground_truth_target(ground_truth))
        try:
            target_validate(task=example.task, target_text=target_text)
        except TargetInvalid:
            continue  # the task's schema no longer fits built targets: keep the reviewed one
        outcome = example_ground_truth_sync(example=example, target_text=target_text, user=user)
        if outcome == GroundTruthSync.REBUILT:
            report.rebuilt.append(example)
        elif outcome == GroundTruthSync.FLAGGED:
            report.flagged.append(example)
    return report
