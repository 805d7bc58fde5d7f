"""The paired comparison of two eval runs: metrics side by side, their differences and the paired charts.

A view function of the EvalRunAdmin (wired in its get_urls, finetune/admin/evalruns.py; reached from the
"Compare" list action).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse

from finetune.admin.fragments import comparison_html, tool_page
from finetune.charts import eval_runs_paired_charts
from finetune.models import EvalRun
from finetune.services.comparison import ComparisonError, eval_runs_compare
from finetune.services.evals import eval_run_leak


def compare_view(model_admin, request, a, b):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    run_a, run_b = get_object_or_404(EvalRun, pk=a), get_object_or_404(EvalRun, pk=b)
    try:
        comparison = eval_runs_compare(run_a=run_a, run_b=run_b)
    except ComparisonError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_changelist"))
    warnings = [
        (f"Eval run {run.pk} ({run.model_name})", leak) for run in (run_a, run_b) if (leak := eval_run_leak(run))
    ]
    return tool_page(
        request,
        model_admin,
        title=f"Eval run {a} ({run_a.model_name}) vs {b} ({run_b.model_name})",
        template="admin/finetune/evals/compare.html",
        warnings=warnings,
        simulated=run_a.is_simulated or run_b.is_simulated,
        comparison=comparison_html(comparison),
        charts=eval_runs_paired_charts(run_a=run_a, run_b=run_b),
    )
