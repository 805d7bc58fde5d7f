"""Promoting an eval run's model: the policy checks, the comparison with the active model, and the override.

A view function of the EvalRunAdmin (wired in its get_urls, finetune/admin/evalruns.py); the promotion is one
service call, and a refusal becomes a message, never a 500.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse

from curation.services.base_models import lifecycle_warning
from finetune.admin.fragments import comparison_html, tool_page
from finetune.models import EvalRun
from finetune.selectors import eval_run_lifecycle
from finetune.services.promotion import PromotionRefused, model_version_promote, promotion_checks


class PromoteForm(forms.Form):
    override_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Required only when the policy fails; recorded in the report and model card.",
    )


def promote_view(model_admin, request, pk):
    if not model_admin.has_promote_permission(request):
        raise PermissionDenied("Only Managers may promote models.")
    run = get_object_or_404(EvalRun.objects.select_related("task"), pk=pk)
    form = PromoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = model_version_promote(
                eval_run=run, user=request.user, override_reason=form.cleaned_data["override_reason"]
            )
        except PromotionRefused as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        else:
            model_admin.message_user(
                request,
                f"{version.model_name} is now the active model of {run.task}"
                + ("" if version.policy_passed else " (policy overridden)")
                + ".",
            )
            return HttpResponseRedirect(reverse("admin:finetune_modelversion_change", args=[version.pk]))
    checks, comparison = promotion_checks(eval_run=run)
    passed = all(c["passed"] for c in checks)
    return tool_page(
        request,
        model_admin,
        title=f"Promote eval run {run.pk}",
        template="admin/finetune/evals/promote.html",
        form=form,
        run=run,
        passed=passed,
        submit="Promote" if passed else "Promote with override",
        lifecycle_warning=lifecycle_warning(eval_run_lifecycle(run)),
        check_headers=["Rule", "Result", "Detail"],
        check_rows=[(c["name"], "PASS" if c["passed"] else "FAIL", c["message"]) for c in checks],
        comparison=comparison_html(comparison) if comparison else "",
    )
