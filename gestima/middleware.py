"""Request guards for the admin (odd values typed into an address are the client's error, 400, never a 500), and
the health endpoints answered ahead of the host and HTTPS checks."""

import logging

from django.http import HttpResponseBadRequest
from django.urls import Resolver404, resolve

from gestima.views import HEALTH_VIEWS

log = logging.getLogger(__name__)


class AdminAddressGuardMiddleware:
    """Answer 400 for two values the admin would pass straight to the database:

    - a NUL character in the query string (PostgreSQL refuses it in any text parameter: a 500 on every
      filter and search);
    - a number that overflows the database's integer (SQLite raises OverflowError): Django guards plain
      integer lookups against overflow, not the admin's foreign-key filters (`?task=<23 digits>`).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/admin/") and "\x00" in "".join(
            key + "".join(values) for key, values in request.GET.lists()
        ):
            return HttpResponseBadRequest("The address contains a NUL character.", content_type="text/plain")
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OverflowError) and request.path.startswith("/admin/"):
            log.warning("Out-of-range number in %s %s: %s", request.method, request.get_full_path()[:300], exception)
            return HttpResponseBadRequest("A number in the address is out of range.", content_type="text/plain")
        return None


class HealthCheckMiddleware:
    """Answer the health endpoints (gestima.views.HEALTH_VIEWS) before every other middleware.

    A load balancer probes each web process at its own address over plain HTTP, with no Host from
    ALLOWED_HOSTS and no X-Forwarded-Proto: through the full stack it would get 400 (host) or a 301 to
    HTTPS, and mark every healthy process down. These answers build no URL from the Host header and
    read no session, so they skip those checks. First in MIDDLEWARE.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/health/"):
            try:
                match = resolve(request.path_info)
            except Resolver404:
                match = None
            if match is not None and match.func in HEALTH_VIEWS:
                return match.func(request, *match.args, **match.kwargs)
        return self.get_response(request)
