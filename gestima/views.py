"""Health endpoints (gestima.health holds the checks): JSON, never cached, GET or HEAD only."""

import hmac

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_safe

from gestima import health


def _answer(body: dict, *, ok: bool = True) -> JsonResponse:
    response = JsonResponse(body, status=200 if ok else 503)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_safe
def health_live(request):
    return _answer(health.health_live())


@require_safe
def health_ready(request):
    ok, body = health.health_ready()
    return _answer(body, ok=ok)


@require_safe
def health_detail(request):
    # A token from the environment, not a staff session: monitoring holds a token, and these answers are
    # given before the session middleware runs (gestima.middleware.HealthCheckMiddleware).
    token = settings.HEALTH_TOKEN
    if not token:
        response = _answer({"error": "The detailed health answer is off: set HEALTH_TOKEN to turn it on."})
        response.status_code = 404
        return response
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = _answer({"error": "Send the HEALTH_TOKEN as 'Authorization: Bearer <token>'."})
        response.status_code = 401
        response["WWW-Authenticate"] = 'Bearer realm="health"'
        return response
    ok, body = health.health_detail()
    return _answer(body, ok=ok)


HEALTH_VIEWS = (health_live, health_ready, health_detail)
