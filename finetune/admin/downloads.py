"""Downloads from the admin pages: an object's raw JSON (estimate, promotion report, checkpoints) and the model card's
Markdown, as attachments, each behind the permission that lets a person view the object's page."""

from __future__ import annotations

import json
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache


def _refused(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def json_endpoint(model_admin, view):
    """An admin URL that answers JSON whatever happens: its data, or {"error"} with 403 (not logged in to the admin,
    or no view permission), 404 (no such object) or 405 (not a GET). `admin_view` would redirect to the login
    page instead, which a script saving the file cannot read."""

    @never_cache
    @wraps(view)
    def endpoint(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return _refused(405, "Download with GET.")
        if not model_admin.admin_site.has_permission(request):
            return _refused(403, "Log in to the admin to download this.")
        try:
            return view(request, *args, **kwargs)
        except PermissionDenied:
            return _refused(403, f"You may not view {model_admin.opts.verbose_name_plural}.")
        except Http404:
            return _refused(404, f"No such {model_admin.opts.verbose_name}.")

    return endpoint


def json_attachment(data, *, filename: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False, cls=DjangoJSONEncoder), content_type="application/json"
    )
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


def markdown_attachment(text: str, *, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response
