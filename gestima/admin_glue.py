"""Cross-app admin glue in one place: actions of one app on another app's admin list, each with its permission.

curation never imports finetune, so the drawing list's "Estimate" action is added here: a subclass of curation's
Drawing admin takes its place once every app's admin is registered (`GestimaConfig.ready`, after the admin's own
autodiscovery, which runs first because django.contrib.admin comes first in INSTALLED_APPS).
"""

from __future__ import annotations

from django.contrib import admin, messages

from curation.admin.drawings import DrawingAdmin
from curation.models import Drawing, Task
from curation.services.drawings import DRAWING_TASK_SLUG
from finetune.services.estimates import EstimateError, estimate_create

ESTIMATE_PERMISSION = "finetune.add_estimate"


class DrawingEstimateAdmin(DrawingAdmin):
    """curation's Drawing admin plus finetune's "Estimate" action, shown only to users who may ask for estimates."""

    actions = [*DrawingAdmin.actions, "estimate_drawings"]

    def has_estimate_permission(self, request):
        return request.user.has_perm(ESTIMATE_PERMISSION)

    @admin.action(description="Estimate with the task's active model", permissions=["estimate"])
    def estimate_drawings(self, request, queryset):
        """One estimate per selected drawing, by the drawing task's active model (or its fallback)."""
        task = Task.objects.filter(slug=DRAWING_TASK_SLUG).first()
        if task is None:
            self.message_user(request, f"There is no task {DRAWING_TASK_SLUG!r} to estimate with.", messages.ERROR)
            return
        made = 0
        for drawing in queryset:
            try:
                estimate_create(drawing=drawing, task=task, user=request.user)
                made += 1
            except EstimateError as exc:
                self.message_user(request, f"{drawing}: {exc}", messages.ERROR)
        if made:
            self.message_user(request, f"{made} estimate(s) made; see Estimates.")


def admin_glue_register(site: admin.AdminSite = admin.site) -> None:
    """Put the glued admins in place of the plain ones (idempotent; nothing to do when an app's admin is absent)."""
    if not site.is_registered(Drawing) or isinstance(site.get_model_admin(Drawing), DrawingEstimateAdmin):
        return
    site.unregister(Drawing)
    site.register(Drawing, DrawingEstimateAdmin)
