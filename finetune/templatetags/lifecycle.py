"""`{% lifecycle_warnings %}`: the box of tasks whose active model shuts down soon, for any admin page.

The admin index and the registry list both render it (one selector, one include), so they never disagree.
"""

from django import template

from finetune.metrics import pct
from finetune.selectors import registry_shutdown_warnings

register = template.Library()


@register.inclusion_tag("admin/finetune/_lifecycle_warnings.html", takes_context=True)
def lifecycle_warnings(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("finetune.view_modelversion"):
        return {"lifecycle_warnings": []}
    return {
        "lifecycle_warnings": registry_shutdown_warnings(),
        "can_change_fallback": user.has_perm("finetune.change_taskfallback"),
    }


@register.filter
def percent(value):
    """A fraction as the eval pages show it (one formatting: finetune.metrics.pct)."""
    return pct(value)
