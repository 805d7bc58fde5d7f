"""The django-rq dashboard, restricted to superusers.

django-rq's own admin lets any staff user empty queues and delete jobs; reviewers are staff, so the
dashboard is re-registered behind a superuser check on every one of its URLs.
"""
from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard


def _superuser_only(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_active or not request.user.is_superuser:
            raise PermissionDenied("The queue dashboard is for superusers only.")
        return view(request, *args, **kwargs)

    return wrapper


class SuperuserQueueAdmin(QueueAdmin):
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def get_urls(self):
        urls = super().get_urls()
        for pattern in urls:
            pattern.callback = _superuser_only(pattern.callback)
        return urls


def install(site=admin.site):
    if site.is_registered(Dashboard):
        site.unregister(Dashboard)
    site.register(Dashboard, SuperuserQueueAdmin)
