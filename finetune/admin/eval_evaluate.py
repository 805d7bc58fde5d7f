"""The "Evaluate a model" page of the eval runs: the form, and the cost confirmation of a few-shot evaluation.

Views are functions of the EvalRunAdmin (wired in its get_urls, finetune/admin/evalruns.py); the evaluation is
one service call, and domain errors become messages, never a 500.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from curation.models import DatasetVersion, Task
from finetune.admin.fragments import tool_page
from finetune.metrics import usd
from finetune.models import ModelEndpoint, ModelKind
from finetune.providers.base import ProviderError, available_providers
from finetune.services.evals import EvalError, eval_run_create
from finetune.services.few_shot import eval_run_input_estimate
from gestima.queues import QueueUnavailable


class EvaluateForm(forms.Form):
    task = forms.ModelChoiceField(Task.objects.all())
    dataset_version = forms.ModelChoiceField(DatasetVersion.objects.select_related("dataset"))
    split = forms.ChoiceField(choices=[("validation", "validation"), ("train", "train")], initial="validation")
    model_name = forms.CharField(
        max_length=200,
        required=False,
        help_text="e.g. gpt-4o-2024-08-06 or ft:gpt-4o-2024-08-06:org::id; with an endpoint, "
        "empty means the endpoint's model.",
    )
    model_kind = forms.ChoiceField(
        choices=ModelKind.choices,
        help_text="Fine-tuned models get the compact prompt, base models the full one; "
        "few-shot models the full one after the most similar reviewed examples.",
    )
    provider = forms.ChoiceField(
        choices=(),
        required=False,
        help_text="Empty: the provider that serves the model (its training run's, else the configured one).",
    )
    endpoint = forms.ModelChoiceField(
        ModelEndpoint.objects.all(),
        required=False,
        help_text="An OpenAI-compatible server (vLLM, Ollama, Together, Azure AI): replaces the provider.",
    )
    few_shot_k = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=20,
        label="Few-shot k",
        help_text="Few-shot kind only: worked examples per question (default 3).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [("", "follows the model")] + [
            (p, p) for p in available_providers() if p not in ("dryrun", "compatible")
        ]


def evaluate_view(model_admin, request):
    if not model_admin.has_run_eval_permission(request):
        raise PermissionDenied
    form = EvaluateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["model_kind"] == ModelKind.FEW_SHOT and not request.POST.get("confirm"):
            # The shots multiply the input tokens: show what the run will send before anything is queued.
            confirmation = _few_shot_confirmation(model_admin, request, form)
            if confirmation is not None:
                return confirmation
        try:
            run = eval_run_create(
                task=data["task"],
                model_name=data["model_name"],
                model_kind=data["model_kind"],
                provider=data["provider"],
                dataset_version=data["dataset_version"],
                split=data["split"],
                user=request.user,
                endpoint=data["endpoint"],
                few_shot_k=data["few_shot_k"],
            )
        except (EvalError, QueueUnavailable, ProviderError) as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        else:
            model_admin.message_user(
                request, f"Eval run {run.pk} queued: {run.total} examples, concurrency {run.concurrency}."
            )
            return HttpResponseRedirect(reverse("admin:finetune_evalrun_change", args=[run.pk]))
    return tool_page(
        request,
        model_admin,
        title="Evaluate a model",
        form=form,
        submit="Queue the evaluation",
        intro="Runs as a background job on the openai queue; each example is asked once "
        "(a resumed run skips done examples).",
    )


def _few_shot_confirmation(model_admin, request, form):
    """The confirmation page of a few-shot evaluation (None, with a message, when it cannot be estimated)."""
    data = form.cleaned_data
    try:
        estimate = eval_run_input_estimate(
            task=data["task"],
            model_name=data["model_name"],
            model_kind=data["model_kind"],
            dataset_version=data["dataset_version"],
            split=data["split"],
            endpoint=data["endpoint"],
            few_shot_k=data["few_shot_k"],
        )
    except EvalError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
        return None
    return tool_page(
        request,
        model_admin,
        title="Evaluate a few-shot model: confirm the cost",
        template="admin/finetune/evals/few_shot_confirm.html",
        form=form,
        data=data,
        estimate=estimate,
        cost=usd(estimate["input_cost_usd"]),
    )
