"""Request guards for the admin: an out-of-range number typed into an address is the client's error, not a 500."""
import logging

from django.http import HttpResponseBadRequest

log = logging.getLogger(__name__)


class OutOfRangeNumberMiddleware:
    """Answer 400 when a number from the address overflows the database's integer (SQLite raises OverflowError).

    The admin's filters on foreign keys (`?task=<23 digits>`) pass the value straight to the database; Django
    guards plain integer lookups against overflow, not related ones. The list is never shown for such a value.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OverflowError) and request.path.startswith("/admin/"):
            log.warning("Out-of-range number in %s %s: %s", request.method, request.get_full_path()[:300], exception)
            return HttpResponseBadRequest("A number in the address is out of range.", content_type="text/plain")
        return None
