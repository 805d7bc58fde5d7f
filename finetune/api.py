"""The JSON API: `POST /api/estimates` with a drawing id (JSON) or a PDF (multipart), for staff with the permission.

Authentication: the admin session (CSRF enforced, as for any form) or HTTP Basic for scripts (no
cookie, so no CSRF risk: the check is skipped for Basic only). Every answer is JSON, errors included.
"""
from __future__ import annotations

import base64
import binascii
import json

from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from curation.models import Drawing, Task
from finetune.models import Estimate
from finetune.services.estimates import DrawingNotReady, EstimateError, estimate_create

PERMISSION = "finetune.add_estimate"


def _error(status: int, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Gestima Studio API", charset="UTF-8"'
    return response


def _basic_user(request):
    """(user or None, tried): the user of a valid `Authorization: Basic` header."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None, False
    try:
        username, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, True
    return authenticate(request, username=username, password=password), True


def _authenticated_user(request):
    """The caller, or an error response (401 without credentials, 403 on a failed CSRF check)."""
    user, tried_basic = _basic_user(request)
    if tried_basic:
        return (user, None) if user is not None else (None, _error(401, "Invalid credentials."))
    if request.user.is_authenticated:
        # A session is a cookie a browser sends by itself: require the CSRF token like any admin form.
        reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if reason is not None:
            return None, _error(403, "CSRF check failed (send the X-CSRFToken header, or use HTTP Basic).")
        return request.user, None
    return None, _error(401, "Authentication required (admin session or HTTP Basic).")


def estimate_json(estimate: Estimate) -> dict:
    return {
        "id": estimate.pk, "task": estimate.task.slug, "drawing_id": estimate.drawing_id,
        "part_number": estimate.drawing.part_number, "model": estimate.model_name, "provider": estimate.provider,
        "model_version_id": estimate.model_version_id, "output": estimate.output,
        "answered_by": estimate.answered_by, "fallback_reason": estimate.fallback_reason or None,
        "error_kind": estimate.error_kind or None, "error": estimate.error or None, "latency_ms": estimate.latency_ms,
        "input_tokens": estimate.input_tokens, "output_tokens": estimate.output_tokens,
        "cost_usd": None if estimate.cost_usd is None else str(estimate.cost_usd), "created_at": estimate.created_at.isoformat(),
    }


def _drawing_from_upload(upload, user):
    """(drawing, error response): the PDF ingested once per content and rendered inline when new.

    Rendering runs here (the drawings service renders in a capped child process) so one request gives
    an estimate; a drawing another worker is rendering right now answers 409 with its id to retry.
    """
    from curation.services.drawings import DrawingRejected, drawing_ingest, drawing_render

    try:
        drawing, _ = drawing_ingest(file=upload, uploaded_by=user, enqueue=False)
    except DrawingRejected as exc:
        return None, _error(400, f"The PDF was refused: {exc}")
    if drawing.status == Drawing.Status.UPLOADED:
        drawing = drawing_render(drawing=drawing)
    if drawing.status == Drawing.Status.FAILED:
        return None, _error(422, f"The drawing could not be rendered: {drawing.error}", drawing_id=drawing.pk)
    return drawing, None


@csrf_exempt  # checked by hand above: enforced for sessions, skipped for HTTP Basic
@require_POST
def estimates_create(request):
    user, denied = _authenticated_user(request)
    if denied is not None:
        return denied
    if not (user.is_active and user.is_staff and user.has_perm(PERMISSION)):
        return _error(403, "You may not ask for estimates.")

    upload = request.FILES.get("file")
    if upload is not None:
        data = request.POST
    else:
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return _error(400, "Send JSON {\"drawing_id\": ...} or a multipart form with a PDF in `file`.")
        if not isinstance(data, dict):
            return _error(400, "The JSON body must be an object.")

    task_slug = data.get("task") or "technology_builder"
    task = Task.objects.filter(slug=task_slug).first()
    if task is None:
        return _error(404, f"No task {task_slug!r}.")

    if upload is not None:
        if not (upload.name or "").lower().endswith(".pdf"):
            return _error(400, "The uploaded file must be a PDF.")
        drawing, problem = _drawing_from_upload(upload, user)
        if problem is not None:
            return problem
    else:
        try:
            drawing = Drawing.objects.get(pk=int(data.get("drawing_id")))
        except (TypeError, ValueError):
            return _error(400, "drawing_id (an integer) is required.")
        except Drawing.DoesNotExist:
            return _error(404, f"No drawing {data.get('drawing_id')}.")

    try:
        estimate = estimate_create(drawing=drawing, task=task, user=user)
    except DrawingNotReady as exc:
        return _error(409, str(exc), drawing_id=drawing.pk, drawing_status=drawing.status)
    except EstimateError as exc:
        return _error(409, str(exc))
    except PermissionDenied as exc:
        return _error(403, str(exc))
    status = 201 if not estimate.error_kind or estimate.error_kind not in ("api_error", "input_error") else 502
    return JsonResponse(estimate_json(estimate), status=status)
