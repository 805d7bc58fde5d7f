"""The answer to a locked-out login (django-axes): JSON 429 on the API, a page on the admin."""

from django.conf import settings
from django.contrib import admin
from django.http import JsonResponse
from django.template.response import TemplateResponse


def _minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def lockout_response(request, original_response=None, credentials=None):
    message = (
        f"Too many failed logins: locked out for {_minutes()} minutes. "
        "Try again later, or ask an administrator to reset the lockout (`manage.py axes_reset`)."
    )
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": message}, status=429)
    else:
        response = TemplateResponse(
            request,
            "registration/locked_out.html",
            {**admin.site.each_context(request), "title": "Locked out", "message": message},
            status=429,
        )
        response.render()
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response
