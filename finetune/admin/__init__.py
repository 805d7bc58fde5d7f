"""Admin screens of the training side, one module per subject."""
from django.contrib import admin

from curation.models import Drawing
from finetune.admin import api_tokens, endpoints, evals, runs  # noqa: F401

# "Estimate" belongs on the drawing list, but curation never imports finetune: the action is added
# to the drawings admin from this side (curation's admin is registered first, by INSTALLED_APPS order).
_drawing_admin = admin.site._registry.get(Drawing)
if _drawing_admin is not None and evals.estimate_drawings not in _drawing_admin.actions:
    _drawing_admin.actions = [*_drawing_admin.actions, evals.estimate_drawings]
