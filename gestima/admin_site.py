"""The project's admin site: Django's own, with the index turned into the dashboard (gestima/dashboard.py).

Installed as the default site (`GestimaAdminConfig.default_site`, named in INSTALLED_APPS in place of
django.contrib.admin), so `admin.site` and every registration stay as they are; only the index view gains
the dashboard's context, read for the signed-in user.
"""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class GestimaAdminSite(admin.AdminSite):
    def index(self, request, extra_context=None):
        from gestima.dashboard import dashboard_context  # models are not ready when the site is made

        # Permissions are checked here, on the server: a section the user may not see is never read.
        return super().index(request, {**dashboard_context(user=request.user), **(extra_context or {})})


class GestimaAdminConfig(AdminConfig):
    """django.contrib.admin with the project's site (the index is the dashboard)."""

    default_site = "gestima.admin_site.GestimaAdminSite"
