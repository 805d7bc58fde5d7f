"""The django-rq dashboard, restricted to superusers.

django-rq's own admin lets any staff user empty queues and delete jobs; reviewers are staff, so the
dashboard is re-registered behind a superuser check on every one of its URLs.
"""

from functools import wraps

from csp.decorators import csp_update
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard
from rq.exceptions import NoSuchJobError


def _superuser_only(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_active or not request.user.is_superuser:
            raise PermissionDenied("The queue dashboard is for superusers only.")
        try:
            return view(request, *args, **kwargs)
        except NoSuchJobError as exc:  # a job id typed in the address, or one gone since the page was shown
            raise Http404(str(exc)) from exc
        except (IndexError, ValueError) as exc:  # queues by index, workers by key: a value that names nothing
            raise Http404(f"Nothing here: {exc}") from exc
        except ImproperlyConfigured as exc:  # the scheduler pages need rq-scheduler, which this project does not use
            raise Http404(str(exc)) from exc

    return wrapper


class SuperuserQueueAdmin(QueueAdmin):
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_urls(self):
        # The Dashboard model has no table: its change, delete and history pages (and the redirect to them)
        # could only fail with a 500, so only the dashboard's own pages are kept.
        urls = [
            pattern
            for pattern in super().get_urls()
            if not (pattern.name or "").endswith(("_change", "_delete", "_history"))
            and str(pattern.pattern) != "<path:object_id>/"
        ]
        for pattern in urls:
            # django-rq's job lists select rows with an inline script: allowed on these superuser pages only.
            pattern.callback = _superuser_only(csp_update({"script-src": ["'unsafe-inline'"]})(pattern.callback))
        return urls


def install(site=admin.site):
    if site.is_registered(Dashboard):
        site.unregister(Dashboard)
    site.register(Dashboard, SuperuserQueueAdmin)
