"""Expert review of examples: approve, reject, ask for changes, correct the target; every change is audited.

Transitions (decided here, shown in the README):
- A reviewer may move an example from any status to approved, rejected or needs_changes; moving it to the
  status it already has is refused (nothing would change, and a second click must not add a history row).
- Only the system moves an example back to pending (its target was edited, or replaced by the changed ground
  truth the reviewer chose, after approval: an approval is for one target, never silently for another).
- Experts' work is never lost: a decision or an edit makes the example a person's (`touched_by_person`), and
  no machine path rewrites its target again. When the ground truth moves under it, the example is flagged
  with the new ground truth and the reviewer keeps theirs or takes it (both audited, below).
- Reject needs a reason and needs-changes needs a note: the next person has to know what was wrong.
- A changed target changes the example's content hash (the one hash, `services.examples.content_hash`) in
  the same write, so the build, the import and an estimate's correction find the example as it is now; an
  edit that would make it identical to another example of its task is refused, naming that one.

Two reviewers at once: the row is locked (`select_for_update`, PostgreSQL) and the write is a conditional
update on the status/target that was read (works on SQLite too), so a concurrent change is never
overwritten silently; the caller may also pass what the reviewer saw (`expected_*`), and a change made
meanwhile by someone else is refused with ReviewConflict instead of being lost.
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from curation.models import Example
from curation.services.audit import example_change_record
from curation.services.examples import content_hash, target_changes_describe
from curation.services.tasks import TargetInvalid, target_normalise, target_validate

__all__ = [
    "ReviewError",
    "ReasonRequired",
    "TransitionNotAllowed",
    "ReviewConflict",
    "DuplicateExample",
    "TargetInvalid",
    "BulkResult",
    "example_approve",
    "example_reject",
    "example_mark_needs_changes",
    "example_target_update",
    "examples_approve",
    "examples_reject",
    "example_ground_truth_keep",
    "example_ground_truth_take",
]

Status = Example.Status


class ReviewError(ValueError):
    """A review step that cannot be done; the message is shown to the reviewer as is."""


class ReasonRequired(ReviewError):
    pass


class TransitionNotAllowed(ReviewError):
    pass


class ReviewConflict(ReviewError):
    """Someone else changed the example after the reviewer loaded it."""


class DuplicateExample(ReviewError):
    """The new target would make the example identical (same messages and target) to another of its task."""


# Where a reviewer may send an example from each status. Pending is missing on purpose: only the system
# (a target change after approval) sends an example back to pending.
ALLOWED_TRANSITIONS = {
    Status.PENDING: {Status.APPROVED, Status.REJECTED, Status.NEEDS_CHANGES},
    Status.NEEDS_CHANGES: {Status.APPROVED, Status.REJECTED},
    Status.APPROVED: {Status.REJECTED, Status.NEEDS_CHANGES},
    Status.REJECTED: {Status.APPROVED, Status.NEEDS_CHANGES},
}


@dataclass(frozen=True)
class BulkResult:
    changed: int
    skipped: int  # already in the wanted status, or changed by someone else meanwhile


def _label(status: str) -> str:
    return Status(status).label if status in Status.values else status


def _locked(example: Example) -> Example:
    # Re-read under a row lock: the instance the caller holds may be minutes old (an open review screen).
    return Example.objects.select_for_update().select_related("task").get(pk=example.pk)


def _check_expected(current: Example, expected_status: str | None) -> None:
    if expected_status is not None and current.status != expected_status:
        raise ReviewConflict(
            f"Example #{current.pk} was changed meanwhile (now {_label(current.status)}, you saw "
            f"{_label(expected_status)}). Reload it and decide again."
        )


def _content_hash_for(current: Example, new_target: str) -> str:
    """The example's content hash with `new_target` (the one hash, as built and imported examples have it).

    A task holds each content once (a constraint), and the build, the import and an estimate's correction look
    examples up by this hash: an edit that makes this example the same as another is refused here, naming it,
    so the reviewer rejects one of the two instead of meeting a server error.
    """
    digest = content_hash(current.messages, new_target)
    twin = (
        Example.objects.filter(task_id=current.task_id, content_hash=digest)
        .exclude(pk=current.pk)
        .values_list("pk", flat=True)
        .first()
    )
    if twin is not None:
        raise DuplicateExample(_duplicate_text(current.pk, twin))
    return digest


def _duplicate_text(pk: int, twin: int | None) -> str:
    other = f"example #{twin}" if twin is not None else "another example"
    return (
        f"Not saved: with this target example #{pk} would be identical to {other} of the same task "
        "(same drawing, prompt and target). Reject one of the two as a duplicate instead."
    )


def _update_or_conflict(filters: dict, fields: dict, *, pk: int, conflict: str) -> None:
    """The conditional update of a target change; 0 rows means someone else changed the example meanwhile.

    The duplicate check above reads before it writes: another edit that reached the same content in between
    is caught by the constraint and refused the same way.
    """
    try:
        with transaction.atomic():
            updated = Example.objects.filter(pk=pk, **filters).update(**fields)
    except IntegrityError:
        raise DuplicateExample(_duplicate_text(pk, None)) from None
    if updated != 1:
        raise ReviewConflict(conflict)


def _set_status(
    *, example: Example, user, status: str, note: str, expected_status: str | None, rejection_reason: str | None = None
) -> Example:
    with transaction.atomic():
        current = _locked(example)
        _check_expected(current, expected_status)
        before = current.status
        if status == before:
            raise TransitionNotAllowed(f"Example #{current.pk} is already {_label(status).lower()}.")
        if status not in ALLOWED_TRANSITIONS.get(before, set()):
            raise TransitionNotAllowed(f"An example cannot go from {_label(before)} to {_label(status)}.")
        now = timezone.now()
        fields = {
            "status": status,
            "reviewer": user if getattr(user, "is_authenticated", False) else None,
            "reviewed_at": now,
            "review_note": note,
            # The reason belongs to a rejection: a later approval clears it (the history keeps it).
            "rejection_reason": rejection_reason or "",
            # From now on the example is a person's: no machine path rewrites its target (see examples.py).
            "touched_by_person": True,
            "updated_at": now,
        }
        # Conditional on the status read above: on SQLite there is no row lock, so this is what makes a
        # concurrent decision lose loudly (0 rows) instead of overwriting the other one.
        if Example.objects.filter(pk=current.pk, status=before).update(**fields) != 1:
            raise ReviewConflict(f"Example #{current.pk} was changed meanwhile. Reload it and decide again.")
        example_change_record(
            example=current,
            user=user,
            field="status",
            before=before,
            after=status,
            note=rejection_reason or note,
        )
    for name, value in fields.items():
        setattr(example, name, value)
    return example


def example_approve(*, example: Example, user, note: str = "", expected_status: str | None = None) -> Example:
    return _set_status(
        example=example, user=user, status=Status.APPROVED, note=(note or "").strip(), expected_status=expected_status
    )


def example_reject(*, example: Example, user, reason: str, expected_status: str | None = None) -> Example:
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("A rejection needs a reason.")
    return _set_status(
        example=example,
        user=user,
        status=Status.REJECTED,
        note="",
        rejection_reason=reason,
        expected_status=expected_status,
    )


def example_mark_needs_changes(*, example: Example, user, note: str, expected_status: str | None = None) -> Example:
    note = (note or "").strip()
    if not note:
        raise ReasonRequired("Say what needs to change.")
    return _set_status(
        example=example, user=user, status=Status.NEEDS_CHANGES, note=note, expected_status=expected_status
    )


def example_target_update(
    *, example: Example, user, target_text: str, expected_target: str | None = None, note: str = ""
) -> Example:
    """Replace the target after validating it against the task's schema; TargetInvalid saves nothing.

    Editing an approved example sends it back to pending: the approval was given to the old target.
    """
    with transaction.atomic():
        current = _locked(example)
        if expected_target is not None and current.target != expected_target:
            raise ReviewConflict(
                f"The target of example #{current.pk} was changed meanwhile by someone else. "
                "Reload it, then make your edit again."
            )
        value = target_validate(task=current.task, target_text=target_text)  # raises TargetInvalid
        new_target = target_normalise(task=current.task, value=value, target_text=target_text)
        if new_target == current.target:
            raise ReviewError("The target is unchanged.")
        now = timezone.now()
        fields = {
            "target": new_target,
            "content_hash": _content_hash_for(current, new_target),  # raises DuplicateExample
            "schema_version": current.task.schema_version,
            "touched_by_person": True,
            "updated_at": now,
        }
        status_before = current.status
        if status_before == Status.APPROVED:
            fields.update(status=Status.PENDING, review_note="Target edited after approval: review again.")
        _update_or_conflict(
            {"target": current.target, "status": status_before},
            fields,
            pk=current.pk,
            conflict=f"Example #{current.pk} was changed meanwhile. Reload it and edit again.",
        )
        example_change_record(
            example=current,
            user=user,
            field="target",
            before=current.target,
            after=new_target,
            note=(note or "").strip(),
        )
        if status_before == Status.APPROVED:
            example_change_record(
                example=current,
                user=user,
                field="status",
                before=status_before,
                after=Status.PENDING,
                note=fields["review_note"],
            )
    for name, field_value in fields.items():
        setattr(example, name, field_value)
    return example


def _waiting_ground_truth(current: Example, expected_ground_truth_target: str | None) -> str:
    waiting = current.ground_truth_target
    if not waiting:
        raise ReviewError(f"Example #{current.pk} has no changed ground truth waiting for a choice.")
    if expected_ground_truth_target is not None and waiting != expected_ground_truth_target:
        raise ReviewConflict(
            f"The ground truth of example #{current.pk} changed again meanwhile. Reload it and choose again."
        )
    return waiting


def example_ground_truth_keep(*, example: Example, user, expected_ground_truth_target: str | None = None) -> Example:
    """The reviewer keeps their target over the changed ground truth; the flag goes, the choice is audited.

    The new ground truth becomes the example's basis, so the same change is never flagged twice.
    """
    with transaction.atomic():
        current = _locked(example)
        waiting = _waiting_ground_truth(current, expected_ground_truth_target)
        basis = current.ground_truth_basis or current.target
        changes = target_changes_describe(before=basis, after=waiting)
        note = f"Kept the reviewer's target over the changed ground truth ({changes})."
        fields = {
            "ground_truth_basis": waiting,
            "ground_truth_target": "",
            "touched_by_person": True,
            "review_note": note,
            "updated_at": timezone.now(),
        }
        if Example.objects.filter(pk=current.pk, ground_truth_target=waiting).update(**fields) != 1:
            raise ReviewConflict(f"Example #{current.pk} was changed meanwhile. Reload it and choose again.")
        example_change_record(example=current, user=user, field="ground_truth", before=basis, after=waiting, note=note)
    for name, value in fields.items():
        setattr(example, name, value)
    return example


def example_ground_truth_take(*, example: Example, user, expected_ground_truth_target: str | None = None) -> Example:
    """The reviewer takes the changed ground truth as the target (audited); an approved example goes back to
    pending like any target change after approval: the approval was given to the old target."""
    with transaction.atomic():
        current = _locked(example)
        waiting = _waiting_ground_truth(current, expected_ground_truth_target)
        changes = target_changes_describe(before=current.target, after=waiting)
        note = f"Took the new ground truth ({changes})."
        now = timezone.now()
        fields = {
            "target": waiting,
            "content_hash": _content_hash_for(current, waiting),  # raises DuplicateExample
            "schema_version": current.task.schema_version,
            "ground_truth_basis": waiting,
            "ground_truth_target": "",
            "touched_by_person": True,
            "review_note": note,
            "updated_at": now,
        }
        status_before = current.status
        if status_before == Status.APPROVED:
            fields.update(
                status=Status.PENDING, review_note=f"{note} Review again: the approval was for the old target."
            )
        _update_or_conflict(
            {"ground_truth_target": waiting, "target": current.target, "status": status_before},
            fields,
            pk=current.pk,
            conflict=f"Example #{current.pk} was changed meanwhile. Reload it and choose again.",
        )
        example_change_record(
            example=current, user=user, field="target", before=current.target, after=waiting, note=note
        )
        if status_before == Status.APPROVED:
            example_change_record(
                example=current,
                user=user,
                field="status",
                before=status_before,
                after=Status.PENDING,
                note=fields["review_note"],
            )
    for name, value in fields.items():
        setattr(example, name, value)
    return example


def _bulk(*, examples, apply) -> BulkResult:
    changed = skipped = 0
    # One example at a time, each with its own conditional update: a row someone else decided meanwhile
    # is skipped and counted, never overwritten. The ids are read first so a changing queryset is stable.
    ids = list(examples.values_list("pk", flat=True)) if hasattr(examples, "values_list") else [e.pk for e in examples]
    with transaction.atomic():
        for example in Example.objects.filter(pk__in=ids).order_by("pk"):
            try:
                apply(example)
            except (TransitionNotAllowed, ReviewConflict):
                skipped += 1
            else:
                changed += 1
    return BulkResult(changed=changed, skipped=skipped)


def examples_approve(*, examples, user) -> BulkResult:
    """Approve many examples; those already approved are skipped and counted."""
    return _bulk(examples=examples, apply=lambda e: example_approve(example=e, user=user))


def examples_reject(*, examples, user, reason: str) -> BulkResult:
    """Reject many examples with one reason (required); those already rejected are skipped and counted."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("A rejection needs a reason.")
    return _bulk(examples=examples, apply=lambda e: example_reject(example=e, user=user, reason=reason))
