"""The review screen of one example: the full page, its fragment fetched in advance, the jump to the next
pending example, and the decisions posted from it (a form POST, or JSON for the screen's script).

Views are functions of the ExampleAdmin (wired in its get_urls); every write is one call into
`curation.services.review`, every read a selector.
"""

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from curation import selectors
from curation.admin.drawings import page_image_url
from curation.admin.review_target import history_rows, target_editor_data
from curation.models import Example
from curation.services.examples import target_changes_describe
from curation.services.review import (
    ReviewConflict,
    ReviewError,
    TargetInvalid,
    example_approve,
    example_ground_truth_keep,
    example_ground_truth_take,
    example_mark_needs_changes,
    example_reject,
    example_target_update,
)

REVIEW_PERMISSION = "curation.review_example"


def next_pending_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    task_id = id_param(request.GET.get("task"))
    after = id_param(request.GET.get("after")) or 0
    if task_id is None:
        task_id = (
            Example.objects.filter(status=Example.Status.PENDING)
            .order_by("pk")
            .values_list("task_id", flat=True)
            .first()
        )
    next_id = selectors.example_next_pending(after=after, task=task_id) if task_id else None
    if next_id is None:
        model_admin.message_user(request, "No pending examples left. Well done.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:curation_example_changelist"))
    return HttpResponseRedirect(reverse("admin:curation_example_review", args=[next_id]))


def review_view(model_admin, request, object_id):
    example = get_object_or_404(Example.objects.select_related("task", "drawing", "reviewer"), pk=object_id)
    posted = request.method == "POST"
    wants_json = posted and "application/json" in request.headers.get("Accept", "")
    # The review permission is checked here and in nothing else: the buttons are hidden for users without it,
    # but a hand-made POST must be refused just the same.
    if not model_admin.has_view_permission(request, example) or (
        posted and not request.user.has_perm(REVIEW_PERMISSION)
    ):
        if wants_json:
            # The screen's script shows this in its banner, naming the example (the admin's 403 page is HTML).
            return JsonResponse({"error": "Your account may not review examples (any more)."}, status=403)
        raise PermissionDenied
    edited_target = None
    if posted:
        if wants_json:
            return _review_post_json(request, example)
        response, edited_target = _review_post(model_admin, request, example)
        if response is not None:
            return response
    return TemplateResponse(
        request,
        "admin/curation/example/review.html",
        {
            **model_admin.admin_site.each_context(request),
            **_review_context(model_admin, request, example, edited_target),
        },
    )


def review_fragment_view(model_admin, request, object_id):
    """The review screen's own part (no admin chrome) for the screen to fetch the next example in advance.

    Same permission and same context as the full screen, so a swapped-in example cannot show more than
    loading its page would; never cached (admin_view), the script keeps it in memory only.
    """
    example = get_object_or_404(Example.objects.select_related("task", "drawing", "reviewer"), pk=object_id)
    if not model_admin.has_view_permission(request, example):
        raise PermissionDenied
    return TemplateResponse(
        request, "admin/curation/example/review_screen.html", _review_context(model_admin, request, example, None)
    )


def _review_decide(request, example, decision) -> str | None:
    """Run a decision that moves the reviewer on; the message saying what was done, None for other decisions.

    Raises ReviewError when the service refuses it.
    """
    post = request.POST
    expected_status = post.get("expected_status") or None
    if decision == "approve":
        example_approve(example=example, user=request.user, note=post.get("note", ""), expected_status=expected_status)
        return f"Approved example #{example.pk}."
    if decision == "reject":
        example_reject(
            example=example, user=request.user, reason=post.get("reason", ""), expected_status=expected_status
        )
        return f"Rejected example #{example.pk}."
    if decision == "needs_changes":
        example_mark_needs_changes(
            example=example, user=request.user, note=post.get("note", ""), expected_status=expected_status
        )
        return f"Example #{example.pk} needs changes."
    return None


def _review_post_json(request, example):
    """A decision posted by the screen's script, which has usually shown the next pending example already.

    The answer says where the screen belongs: when `next_id` is not the example the script showed (someone
    else took it meanwhile) it loads that one; `next_pending_url` is the next pending after it, now that this
    decision is stored (the shown screen was fetched before, when this example was still pending). An error
    is shown by the script on the screen it is on, naming this example, with a retry.
    """
    decision = request.POST.get("decision", "")
    try:
        done = _review_decide(request, example, decision)
    except ReviewError as exc:
        return JsonResponse({"error": str(exc)}, status=409 if isinstance(exc, ReviewConflict) else 400)
    if done is None:
        return JsonResponse({"error": "Unknown decision."}, status=400)
    next_id = selectors.example_next_pending(after=example.pk, task=example.task_id)
    after_next = None
    if next_id is None:
        done, next_id = f"{done} No pending examples left.", example.pk
    else:
        after_next = selectors.example_next_pending(after=next_id, task=example.task_id)
    return JsonResponse(
        {
            "message": done,
            "example_id": example.pk,
            "next_id": next_id,
            "next_url": _review_url(next_id),
            "next_pending_url": _review_url(after_next) if after_next else "",
        }
    )


def _review_url(pk: int) -> str:
    return reverse("admin:curation_example_review", args=[pk])


def _review_post(model_admin, request, example):
    """Run the decision; (redirect, None) when done, (None, text to show again) when refused."""
    decision = request.POST.get("decision", "")
    post = request.POST
    try:
        done = _review_decide(request, example, decision)
        if done is None and decision in ("keep_target", "take_ground_truth"):
            choose = example_ground_truth_keep if decision == "keep_target" else example_ground_truth_take
            choose(
                example=example,
                user=request.user,
                expected_ground_truth_target=post.get("expected_ground_truth_target"),
            )
            done = (
                f"Kept your target of example #{example.pk}; the changed ground truth is noted in its history."
                if decision == "keep_target"
                else f"Example #{example.pk} now has the new ground truth as its target."
            )
            model_admin.message_user(request, done, messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:curation_example_review", args=[example.pk])), None
        if done is None and decision == "edit":
            example_target_update(
                example=example,
                user=request.user,
                target_text=post.get("target", ""),
                expected_target=post.get("expected_target"),
            )
            model_admin.message_user(request, f"Target of example #{example.pk} saved.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:curation_example_review", args=[example.pk])), None
        if done is None:
            model_admin.message_user(request, "Unknown decision.", messages.ERROR)
            return None, None
    except TargetInvalid as exc:
        model_admin.message_user(request, f"Target not saved: {exc}", messages.ERROR)
        return None, post.get("target", "")
    except ReviewError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return None, post.get("target") if decision == "edit" else None
    # A decision moves the reviewer on to the next pending example of the task; when none is left the
    # screen stays on this one and says so.
    next_id = selectors.example_next_pending(after=example.pk, task=example.task_id)
    if next_id is None:
        model_admin.message_user(request, f"{done} No pending examples left.", messages.SUCCESS)
        next_id = example.pk
    else:
        model_admin.message_user(request, done, messages.SUCCESS)
    return HttpResponseRedirect(reverse("admin:curation_example_review", args=[next_id])), None


def _review_context(model_admin, request, example, edited_target):
    previous_id, next_id = selectors.example_neighbours(example=example)
    next_pending_id = selectors.example_next_pending(after=example.pk, task=example.task_id)
    ground_truth = selectors.example_ground_truth(example=example)
    can_review = request.user.has_perm(REVIEW_PERMISSION)
    # Text tasks answer in free text: "42" is an answer there, not a JSON number.
    text_task = (example.task.output_schema or {}).get("type") == "string"
    target_value = example.target if text_task else _parsed(example.target)
    try:
        editable_target = (
            json.dumps(target_value, ensure_ascii=False, indent=2)
            if not isinstance(target_value, str)
            else example.target
        )
    except (TypeError, ValueError):
        editable_target = example.target
    return {
        "title": f"Review example #{example.pk}",
        # The drawing needs the width more than the app list does.
        "is_nav_sidebar_enabled": False,
        "opts": model_admin.model._meta,
        "example": example,
        "part_number": selectors.example_part_number(example),
        "pages": [{"page": page, "url": _page_url(page)} for page in selectors.example_pages(example=example)],
        "tag_items": [
            (key, ", ".join(map(str, value)) if isinstance(value, list) else value)
            for key, value in (example.tags or {}).items()
        ]
        if isinstance(example.tags, dict)
        else [],
        "target": target_value,
        "target_rows": _target_rows(target_value),
        "ground_truth": ground_truth,
        "ground_truth_rows": _ground_truth_rows(ground_truth, target_value),
        "history": history_rows(selectors.example_history(example=example, limit=settings.REVIEW_HISTORY_LIMIT)),
        "previous_id": previous_id,
        "next_id": next_id,
        "next_pending_id": next_pending_id,
        "can_review": can_review,
        "editable_target": edited_target if edited_target is not None else editable_target,
        "edit_open": edited_target is not None,
        "schema_json": json.dumps(example.task.output_schema, ensure_ascii=False, indent=2),
        "target_editor": target_editor_data(example=example, edited_target=edited_target) if can_review else None,
        "ground_truth_change": _ground_truth_change(example),
    }


# --- presentation helpers (no ORM) -------------------------------------------------------------------


def _ground_truth_change(example) -> dict | None:
    """What the review screen shows when the ground truth moved under a reviewed target; None when nothing waits."""
    if not example.ground_truth_target:
        return None
    was = example.ground_truth_basis or example.target
    new = _parsed(example.ground_truth_target)
    return {
        "was_to_now": target_changes_describe(before=was, after=example.ground_truth_target),
        "yours_to_new": target_changes_describe(before=example.target, after=example.ground_truth_target),
        "new_target": new,
        "new_rows": _target_rows(new),
        "new_text": example.ground_truth_target,
    }


def id_param(text) -> int | None:
    """A database id from the query string, or None: "²" is a digit to str.isdigit() but not to int()."""
    if not text or not text.isascii() or not text.isdecimal():
        return None
    value = int(text)
    return value if value < 2**63 else None


def _parsed(target: str):
    try:
        return json.loads(target)
    except (TypeError, ValueError):
        return target


def _page_url(page) -> str:
    # Drawings are confidential: page images are served to staff only, never from a public media URL; the
    # content hash in the URL lets the browser keep them, so the next example's drawing can be fetched early.
    return page_image_url(page)


def _number(value) -> float | None:
    # Ground truth may store decimals as strings (JSON has no decimal type).
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _target_rows(target) -> list[dict]:
    operations = target.get("operations") if isinstance(target, dict) else None
    return [row for row in operations if isinstance(row, dict)] if isinstance(operations, list) else []


def _ground_truth_rows(ground_truth, target) -> list[dict]:
    if ground_truth is None:
        return []
    by_key = {(row.get("machine"), row.get("operation")): row for row in _target_rows(target)}
    rows = []
    for row in ground_truth["operations"] or []:
        cv = _number(row.get("cv"))
        truth = _number(row.get("machine_time_min_per_piece"))
        target_row = by_key.get((row.get("machine"), row.get("operation")))
        target_time = _number(target_row.get("machine_time_min_per_piece")) if target_row else None
        deviation = None
        if truth and target_time is not None:
            deviation = round(100 * (target_time - truth) / truth, 1)
        rows.append(
            {
                **row,
                "high_cv": cv is not None and cv > settings.GROUND_TRUTH_HIGH_CV,
                "target_time": target_time,
                "deviation_pct": deviation,
            }
        )
    return rows
