"""The JSON API: `POST /api/estimates` with a drawing id (JSON) or a PDF (multipart), for staff with the permission,
and `GET /api/estimates/<id>`: an estimate and, for a posted PDF, the status of its rendering and estimate.

A drawing id is answered at once (201, one chat call). A PDF is answered 202 with `Location` (the status URL):
rendering a large PDF takes minutes, so a worker renders and estimates it (finetune/services/estimate_queue.py)
while the caller polls; refusals that need no rendering (no active model, not a PDF) are answered at once.

Authentication, in the order tried:
- `Authorization: Bearer <key>`: an API token made in the admin (API tokens), checked by its SHA-256 hash, so
  a call costs no password hashing. The way for scripts.
- `Authorization: Basic`: username and password, hashed on every call; failures count towards the lockout
  (django-axes: AXES_FAILURE_LIMIT per username and per address), and a locked-out caller gets 429.
- The admin session (CSRF enforced, as for any form).
Bearer and Basic send no cookie, so no CSRF risk: the check is skipped for them only. Every answer is JSON,
errors included (400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 502, 503).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFilesSent
from django.http import JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from curation.models import Drawing, Task
from curation.task_presets import DRAWING_TASK_SLUG
from finetune.estimate_json import estimate_json, estimate_status_url
from finetune.models import Estimate
from finetune.services.api_tokens import api_token_user
from finetune.services.estimate_queue import DrawingUnusable, estimate_pdf_request
from finetune.services.estimates import DrawingNotReady, EstimateError, EstimateFailed, estimate_create
from gestima.lockout import lockout_response
from gestima.queues import QueueUnavailable
from gestima.work import WorkStatus

PERMISSION = "finetune.add_estimate"
log = logging.getLogger(__name__)
_MAX_ID = 2**63 - 1


def _error(status: int, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = (
            'Bearer realm="Gestima Studio API", Basic realm="Gestima Studio API", charset="UTF-8"'
        )
    return response


def _basic_user(request, credentials: str):
    """The user of a valid `Authorization: Basic` value, or None; axes counts a failure and may lock out."""
    try:
        username, _, password = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    # request= lets django-axes see the caller's address: required by its backend, and what it locks out.
    return authenticate(request=request, username=username, password=password)


def _authenticated_user(request):
    """The caller, or an error response (401 bad or no credentials, 403 failed CSRF check, 429 locked out)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        user = api_token_user(key=credentials.strip())
        return (user, None) if user is not None else (None, _error(401, "Invalid or revoked API token."))
    if scheme.lower() == "basic":
        user = _basic_user(request, credentials)
        if user is not None:
            return user, None
        if getattr(request, "axes_locked_out", False):  # set by django-axes when this failure locked it out
            return None, lockout_response(request)
        return None, _error(401, "Invalid credentials.")
    if request.user.is_authenticated:
        # A session is a cookie a browser sends by itself: require the CSRF token like any admin form.
        reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if reason is not None:
            return None, _error(403, "CSRF check failed (send the X-CSRFToken header, or use an API token).")
        return request.user, None
    return None, _error(401, "Authentication required (an API token, HTTP Basic or the admin session).")


def _json_api_for(method: str):
    """One method only, and JSON for every outcome: Django's own error pages are HTML."""
    return functools.partial(_json_api, method=method)


def _json_api(view, method: str = "POST"):
    """POST only (or `method`), and JSON for every outcome: Django's own error pages are HTML."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != method:
            response = _error(405, f"Method {request.method} is not allowed: use {method}.")
            response["Allow"] = method
            return response
        try:
            return view(request, *args, **kwargs)
        except (RequestDataTooBig, TooManyFilesSent) as exc:
            return _error(413, f"The request is too large: {exc}")
        except SuspiciousOperation as exc:
            return _error(400, f"Bad request: {exc}")
        except Exception:
            log.exception("POST %s failed", request.path)
            return _error(
                500, "Internal error: the estimate was not made. The administrators find the details in the log."
            )

    return wrapper


def _drawing_id(value) -> int | None:
    """A drawing id: a JSON integer (not true, not 1.9, not 1e400) or a string of digits, within a database integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and 0 < value <= _MAX_ID:
        return value
    return None


def not_found(request, *args, **kwargs):
    return _error(404, f"No API endpoint at {request.path}: see POST /api/estimates.")


@csrf_exempt  # checked by hand above: enforced for sessions, skipped for tokens and HTTP Basic
@_json_api
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
        except (ValueError, RecursionError):
            return _error(400, 'Send JSON {"drawing_id": ...} or a multipart form with a PDF in `file`.')
        if not isinstance(data, dict):
            return _error(400, "The JSON body must be an object.")

    task_slug = data.get("task") or DRAWING_TASK_SLUG
    if not isinstance(task_slug, str) or "\x00" in task_slug:
        return _error(400, "task must be a task's slug (text).")
    task = Task.objects.filter(slug=task_slug[:100]).first()
    if task is None:
        return _error(404, f"No task {task_slug[:100]!r}.")

    if upload is not None:
        return _pdf_accept(upload, task=task, user=user)
    else:
        drawing_id = _drawing_id(data.get("drawing_id"))
        if drawing_id is None:
            return _error(400, "drawing_id (a positive integer) is required.")
        drawing = Drawing.objects.filter(pk=drawing_id).first()
        if drawing is None:
            return _error(404, f"No drawing {drawing_id}.")

    try:
        estimate = estimate_create(drawing=drawing, task=task, user=user)
    except DrawingNotReady as exc:
        return _error(409, str(exc), drawing_id=drawing.pk, drawing_status=drawing.status)
    except EstimateFailed as exc:
        # Nothing was stored: the model never answered (provider down, page image unreadable).
        return _error(502, str(exc), error_kind=exc.kind, drawing_id=drawing.pk)
    except EstimateError as exc:
        return _error(409, str(exc))
    except PermissionDenied as exc:
        return _error(403, str(exc))
    return JsonResponse(estimate_json(estimate), status=201)


def _pdf_accept(upload, *, task, user) -> JsonResponse:
    """A posted PDF: refused at once (4xx, 503) or accepted (202) with the status URL in `Location`."""
    from curation.services.drawing_uploads import DrawingRejected

    if not (upload.name or "").lower().endswith(".pdf"):
        return _error(400, "The uploaded file must be a PDF.")
    if upload.size > settings.UPLOAD_MAX_BYTES:
        return _error(413, f"The PDF is {upload.size:,} bytes: at most {settings.UPLOAD_MAX_BYTES:,} are accepted.")
    try:
        estimate, _ = estimate_pdf_request(file=upload, task=task, user=user)
    except DrawingRejected as exc:
        return _error(400, f"The PDF was refused: {exc}")
    except DrawingUnusable as exc:
        return _error(422, str(exc), drawing_id=exc.drawing.pk)
    except EstimateError as exc:
        return _error(409, str(exc))
    except QueueUnavailable as exc:
        return _error(503, f"{exc} The PDF was not queued: post it again once the queue is back.")
    except PermissionDenied as exc:
        return _error(403, str(exc))
    response = JsonResponse(estimate_json(estimate), status=202)
    response["Location"] = estimate_status_url(estimate)
    return response


@_json_api_for("GET")
def estimate_detail(request, pk: int):
    """An estimate by id: its answer, or for a posted PDF its status and progress until the worker is done."""
    user, denied = _authenticated_user(request)
    if denied is not None:
        return denied
    if not (user.is_active and user.is_staff and user.has_perm(PERMISSION)):
        return _error(403, "You may not ask for estimates.")
    estimate = Estimate.objects.select_related("task", "drawing").filter(pk=pk).first() if pk <= _MAX_ID else None
    if estimate is None:
        return _error(404, f"No estimate {pk}.")
    response = JsonResponse(estimate_json(estimate))
    response["Cache-Control"] = "no-store"  # every poll must see the row as it is now
    if estimate.status in (WorkStatus.QUEUED, WorkStatus.RUNNING):
        response["Retry-After"] = "2"
    return response
