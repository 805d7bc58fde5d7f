"""Admin screens for evaluation: eval runs (progress, metrics, compare, resume, promote), the registry, estimates.

Thin: every button is one service call; domain errors become messages, never a 500.
"""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from curation.models import DatasetVersion, Drawing, Example, Task
from curation.services.tasks import TargetInvalid
from curation.services.base_models import lifecycle_warning, model_lifecycle
from finetune.models import Estimate, EvalResult, EvalRun, ModelEndpoint, ModelKind, ModelVersion, TaskFallback
from finetune.providers.base import ProviderError, available_providers
from finetune.services.comparison import ComparisonError, eval_runs_compare
from finetune.services.estimates import EstimateError, estimate_correct, estimate_create
from finetune.metrics import metric_rows, pct, pct_with_ci, usd
from finetune.selectors import eval_run_lifecycle, eval_run_lineage, lineage_lines, model_version_lifecycle
from finetune.services.evals import EvalError, eval_run_create, eval_run_is_stale, eval_run_leak, eval_run_resume
from finetune.services.few_shot import eval_run_input_estimate, few_shot_run_estimate
from finetune.services.promotion import (PromotionRefused, model_version_activate, model_version_promote,
                                         promotion_checks)
from gestima.live import live_context, live_refused, live_response, live_state
from gestima.queues import QueueUnavailable

TEMPLATE = "admin/finetune/evals/page.html"
SIMULATED_BADGE = "admin/finetune/_simulated_badge.html"


# --- small HTML helpers (tables of metrics) ----------------------------------------------------
def _pct(value) -> str:
    return pct(value, missing="—")


def _with_ci(block) -> str:
    return pct_with_ci(block, missing="—")


def _table(headers, rows):
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join("", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in row)),) for row in rows))
    return format_html('<table class="gestima-metrics"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)


def metrics_html(metrics: dict):
    if not metrics:
        return "—"
    rows = [(f"{name} {subject}".strip(), _with_ci(block), "" if n is None else n)
            for name, subject, block, n in metric_rows(metrics)]
    parts = [_table(["Metric", "Value (95 % CI)", "n"], rows)]
    errors = metrics.get("error_counts") or {}
    if errors:
        parts.append(format_html("<p>Errors: {}</p>", ", ".join(f"{k} {v}" for k, v in sorted(errors.items()))))
    for path_, keys in (metrics.get("by_key") or {}).items():
        parts.append(format_html("<h4>By machine / operation: {}</h4>", path_))
        parts.append(_table(["Key", "MAPE [95 % CI]", "Bias", "examples"],
                            [(k, _with_ci(b.get("mape")), _with_ci(b.get("bias")), b.get("n_examples")) for k, b in keys.items()]))
    for tag, groups in (metrics.get("by_tag") or {}).items():
        parts.append(format_html("<h4>By {}</h4>", tag))
        rows = []
        for value, block in groups.items():
            numeric = block.get("numeric") or {}
            first = next(iter(numeric.values()), {})
            rows.append((value, block.get("n"), _pct(block.get("json_validity")), _with_ci(first.get("mape"))))
        parts.append(_table([tag, "examples", "JSON validity", "MAPE (first numeric field) [95 % CI]"], rows))
    return format_html_join("", "{}", ((p,) for p in parts))


def _drawing_cell(example: Example | None):
    drawing = example.drawing if example else None
    if drawing is None:
        return "—"
    page = drawing.pages.order_by("number").first()
    link = reverse("admin:curation_drawing_change", args=[drawing.pk])
    if page is None:
        return format_html('<a href="{}">{}</a>', link, drawing)
    thumb = reverse("admin:curation_page_image", args=[page.pk]) + "?size=thumb"
    return format_html('<a href="{}"><img src="{}" alt="{}" style="max-width:160px;max-height:110px;border:1px solid #ccc"><br>{}</a>',
                       link, thumb, drawing, drawing)


def worst_html(run: EvalRun):
    worst = (run.metrics or {}).get("worst") or []
    if not worst:
        return "—"
    examples = Example.objects.select_related("drawing").in_bulk([w["id"] for w in worst])
    results = {r.example_id: r for r in EvalResult.objects.filter(eval_run=run, example_id__in=[w["id"] for w in worst])}
    rows = []
    for w in worst:
        example = examples.get(w["id"])
        result = results.get(w["id"])
        details = "; ".join(
            f"{'/'.join(d['key'])} {d['path'].split('.')[-1]}: {d['actual']:g} vs "
            f"{'missing' if d['predicted'] is None else format(d['predicted'], 'g')} ({_pct(d['ape'])})"
            for d in w["details"])
        error = f"{result.error_kind}: {result.error_message[:200]}" if result and result.error_kind else ""
        try:
            example_link = format_html('<a href="{}">#{}</a>', reverse("admin:curation_example_change", args=[w["id"]]), w["id"])
        except NoReverseMatch:
            example_link = f"#{w['id']}"
        rows.append((_drawing_cell(example), example_link, _pct(w["score"]), error or "—", details or "—"))
    return _table(["Drawing", "Example", "Mean APE", "Error", "Values (target vs answer)"], rows)


# --- forms ------------------------------------------------------------------------------------
class EvaluateForm(forms.Form):
    task = forms.ModelChoiceField(Task.objects.all())
    dataset_version = forms.ModelChoiceField(DatasetVersion.objects.select_related("dataset"))
    split = forms.ChoiceField(choices=[("validation", "validation"), ("train", "train")], initial="validation")
    model_name = forms.CharField(max_length=200, required=False,
                                 help_text="e.g. gpt-4o-2024-08-06 or ft:gpt-4o-2024-08-06:org::id; with an endpoint, "
                                           "empty means the endpoint's model.")
    model_kind = forms.ChoiceField(choices=ModelKind.choices, help_text="Fine-tuned models get the compact prompt, base models "
                                   "the full one; few-shot models the full one after the most similar reviewed examples.")
    provider = forms.ChoiceField(choices=(), required=False,
                                 help_text="Empty: the provider that serves the model (its training run's, else the "
                                           "configured one).")
    endpoint = forms.ModelChoiceField(ModelEndpoint.objects.all(), required=False,
                                      help_text="An OpenAI-compatible server (vLLM, Ollama, Together, Azure AI): "
                                                "replaces the provider.")
    few_shot_k = forms.IntegerField(required=False, min_value=1, max_value=20, label="Few-shot k",
                                    help_text="Few-shot kind only: worked examples per question (default 3).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [("", "follows the model")] + [
            (p, p) for p in available_providers() if p not in ("dryrun", "compatible")]


class PromoteForm(forms.Form):
    override_reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
                                      help_text="Required only when the policy fails; recorded in the report and model card.")


class EstimateForm(forms.Form):
    task = forms.ModelChoiceField(Task.objects.all())
    drawing = forms.ModelChoiceField(Drawing.objects.filter(status=Drawing.Status.RENDERED))


class CorrectForm(forms.Form):
    target_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 18, "cols": 100, "style": "font-family:monospace"}),
                                  label="Corrected answer (JSON, checked against the task schema)")


def _page(request, admin_obj, *, title, form=None, body="", submit="", opts=None):
    context = {**admin_obj.admin_site.each_context(request), "title": title, "form": form, "body": body,
               "submit": submit, "opts": opts or admin_obj.model._meta}
    return TemplateResponse(request, TEMPLATE, context)


# --- eval runs --------------------------------------------------------------------------------
@admin.register(EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "model_name", "model_kind", "dataset_version", "split_display", "training_run", "status", "progress_display",
                    "mape_display", "validity_display", "cost_display", "created_at"]
    list_filter = ["status", "model_kind", "task", "dataset_version", "split", "endpoint"]
    search_fields = ["model_name"]
    list_select_related = ["dataset_version__dataset", "training_run__base_model"]
    actions = ["compare_selected", "resume_selected", "promote_selected"]
    readonly_fields = ["task", "model_name", "model_kind", "provider", "deployment_name", "dataset_version", "split",
                       "training_run", "prompt_kind", "prompt_text", "status_display", "progress_display", "concurrency",
                       "cost_display",
                       "input_tokens", "output_tokens", "error", "attempts", "rq_job_id", "created_by", "created_at",
                       "started_at", "heartbeat_at", "finished_at", "metrics_display", "worst_display", "results_link",
                       "leak_display", "lineage_display", "endpoint", "few_shot_display"]
    fieldsets = [
        (None, {"fields": ["leak_display", "task", "model_name", "model_kind", "provider", "deployment_name", "endpoint",
                           "training_run", "dataset_version", "split", "status_display", "progress_display", "error",
                           "results_link"]}),
        ("Few-shot from reviewed examples", {"fields": ["few_shot_display"]}),
        ("Lineage", {"fields": ["lineage_display"]}),
        ("Metrics", {"fields": ["metrics_display"]}),
        ("Worst examples", {"fields": ["worst_display"]}),
        ("Prompt", {"classes": ["collapse"], "fields": ["prompt_kind", "prompt_text"]}),
        ("Run", {"classes": ["collapse"], "fields": ["concurrency", "cost_display", "input_tokens", "output_tokens", "attempts",
                                                      "rq_job_id", "created_by", "created_at", "started_at", "heartbeat_at",
                                                      "finished_at"]}),
    ]

    # permissions
    def has_add_permission(self, request):
        return request.user.has_perm("finetune.run_eval")

    def has_change_permission(self, request, obj=None):
        return False

    def has_run_eval_permission(self, request):
        return request.user.has_perm("finetune.run_eval")

    def has_promote_permission(self, request):
        return request.user.has_perm("finetune.promote_model")

    # columns
    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        return format_html('<span data-live-field="status">{}</span>', obj.get_status_display())

    @staticmethod
    def _progress(obj) -> tuple[str, int]:
        done = obj.done_count + obj.error_count
        return f"{done} / {obj.total}", int(100 * done / obj.total) if obj.total else 0

    @admin.display(description="progress")
    def progress_display(self, obj):
        # data-live-*: the run page updates these in place while the run is under way (static/gestima/live.js).
        text, width = self._progress(obj)
        return format_html('<span title="{} ok, {} with errors" data-live-field="progress">{}</span> '
                           '<span style="display:inline-block;width:80px;height:8px;background:#eee">'
                           '<span data-live-bar="progress" style="display:block;width:{}%;height:8px;background:#417690"></span></span>',
                           obj.done_count, obj.error_count, text, width)

    @admin.display(description="MAPE")
    def mape_display(self, obj):
        numeric = (obj.metrics or {}).get("numeric") or {}
        first = next(iter(numeric.values()), None)
        return _with_ci(first.get("mape")) if first else "—"

    @admin.display(description="cost", ordering="cost_usd")
    def cost_display(self, obj):
        return usd(obj.cost_usd)

    @admin.display(description="split", ordering="split")
    def split_display(self, obj):
        leak = eval_run_leak(obj)
        return format_html('{} <strong class="eval-leak" title="{}">⚠ {}</strong>', obj.split, leak,
                           leak.split(":")[0]) if leak else obj.split

    @admin.display(description="unseen examples?")
    def leak_display(self, obj):
        leak = eval_run_leak(obj)
        if not leak:
            return "Yes: none of the evaluated examples was trained on."
        return format_html('<strong class="eval-leak errornote">⚠ {}</strong> These numbers flatter the model; '
                           'it cannot be promoted on them without a recorded override reason.', leak)

    @admin.display(description="worked examples")
    def few_shot_display(self, obj):
        if not obj.few_shot:
            return "— (not a few-shot model)"
        return few_shot_facts_html(obj)

    @admin.display(description="lineage")
    def lineage_display(self, obj):
        return _table(["", ""], lineage_lines(eval_run_lineage(obj)))

    @admin.display(description="JSON valid")
    def validity_display(self, obj):
        return _pct(((obj.metrics or {}).get("json_validity") or {}).get("value"))

    @admin.display(description="metrics (bootstrap 95 % CI over examples)")
    def metrics_display(self, obj):
        return metrics_html(obj.metrics)

    @admin.display(description="worst examples")
    def worst_display(self, obj):
        return worst_html(obj)

    @admin.display(description="results")
    def results_link(self, obj):
        url = reverse("admin:finetune_evalresult_changelist") + f"?eval_run__id__exact={obj.pk}"
        return format_html('<a href="{}">{} results</a>', url, obj.results.count())

    # views
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("evaluate/", wrap(self.evaluate_view), name="finetune_evalrun_evaluate"),
            path("compare/<int:a>/<int:b>/", wrap(self.compare_view), name="finetune_evalrun_compare"),
            path("<int:pk>/promote/", wrap(self.promote_view), name="finetune_evalrun_promote"),
            path("<int:pk>/resume/", wrap(self.resume_view), name="finetune_evalrun_resume"),
            path("<int:pk>/live.json", wrap(self.live_view), name="finetune_evalrun_live"),
        ] + super().get_urls()

    def _live(self, run: EvalRun) -> dict:
        """What the eval-run page updates while the run is queued or running."""
        text, width = self._progress(run)
        return live_state(status=run.status, active=run.status in (EvalRun.Status.QUEUED, EvalRun.Status.RUNNING),
                          fields={"status": run.get_status_display(), "progress": text}, bars={"progress": width})

    def live_view(self, request, pk):
        """The JSON the eval-run page polls (static/gestima/live.js)."""
        if not self.has_view_permission(request):
            return live_refused(403, "You may not view eval runs.")
        try:
            run = get_object_or_404(EvalRun, pk=pk)
        except Http404:
            return live_refused(404, f"Eval run {pk} does not exist.")
        return live_response(self._live(run))

    def _can_resume(self, request, run: EvalRun) -> bool:
        if not self.has_run_eval_permission(request):
            return False
        return run.status == EvalRun.Status.FAILED or (run.status == EvalRun.Status.RUNNING and eval_run_is_stale(run))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = EvalRun.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        extra = {}
        if run is not None:
            extra = {
                "run": run,
                "can_resume": self._can_resume(request, run),
                "can_promote": self.has_promote_permission(request) and run.status == EvalRun.Status.DONE,
                **live_context(state=self._live(run), url=reverse("admin:finetune_evalrun_live", args=[run.pk])),
            }
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def resume_view(self, request, pk):
        """The "Resume" button of the run page: the same service as the list action."""
        if not self.has_run_eval_permission(request):
            raise PermissionDenied("Only Managers may resume evaluations.")
        run = get_object_or_404(EvalRun, pk=pk)
        if request.method == "POST":
            try:
                run = eval_run_resume(eval_run=run, user=request.user)
            except (EvalError, QueueUnavailable) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Eval run {run.pk} queued again: only examples without a result are asked.")
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_change", args=[run.pk]))

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_evaluate"))

    def evaluate_view(self, request):
        if not self.has_run_eval_permission(request):
            raise PermissionDenied
        form = EvaluateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if data["model_kind"] == ModelKind.FEW_SHOT and not request.POST.get("confirm"):
                # The shots multiply the input tokens: show what the run will send before anything is queued.
                confirmation = self._few_shot_confirmation(request, form)
                if confirmation is not None:
                    return confirmation
            try:
                run = eval_run_create(task=data["task"], model_name=data["model_name"], model_kind=data["model_kind"],
                                      provider=data["provider"], dataset_version=data["dataset_version"],
                                      split=data["split"], user=request.user, endpoint=data["endpoint"],
                                      few_shot_k=data["few_shot_k"])
            except (EvalError, QueueUnavailable, ProviderError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Eval run {run.pk} queued: {run.total} examples, concurrency {run.concurrency}.")
                return HttpResponseRedirect(reverse("admin:finetune_evalrun_change", args=[run.pk]))
        return _page(request, self, title="Evaluate a model", form=form, submit="Queue the evaluation",
                     body=format_html("<p>{}</p>", "Runs as a background job on the openai queue; each example is asked "
                                                   "once (a resumed run skips done examples)."))

    def _few_shot_confirmation(self, request, form):
        """The confirmation page of a few-shot evaluation (None, with a message, when it cannot be estimated)."""
        data = form.cleaned_data
        try:
            estimate = eval_run_input_estimate(task=data["task"], model_name=data["model_name"], model_kind=data["model_kind"],
                                               dataset_version=data["dataset_version"], split=data["split"],
                                               endpoint=data["endpoint"], few_shot_k=data["few_shot_k"])
        except EvalError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        context = {**self.admin_site.each_context(request), "title": "Evaluate a few-shot model: confirm the cost",
                   "opts": self.model._meta, "form": form, "data": data, "estimate": estimate,
                   "cost": usd(estimate["input_cost_usd"])}
        return TemplateResponse(request, "admin/finetune/evals/few_shot_confirm.html", context)

    def compare_view(self, request, a, b):
        if not self.has_view_permission(request):
            raise PermissionDenied
        run_a, run_b = get_object_or_404(EvalRun, pk=a), get_object_or_404(EvalRun, pk=b)
        try:
            comparison = eval_runs_compare(run_a=run_a, run_b=run_b)
        except ComparisonError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:finetune_evalrun_changelist"))
        warnings = [(f"Eval run {run.pk} ({run.model_name})", leak) for run in (run_a, run_b) if (leak := eval_run_leak(run))]
        body = format_html_join("", '<p class="errornote eval-leak">⚠ {}: {}</p>', warnings)
        body = format_html("{}{}", render_to_string(SIMULATED_BADGE, {"simulated": run_a.is_simulated or run_b.is_simulated}), body)
        return _page(request, self, title=f"Eval run {a} ({run_a.model_name}) vs {b} ({run_b.model_name})",
                     body=format_html("{}{}", body, comparison_html(comparison)))

    def promote_view(self, request, pk):
        if not self.has_promote_permission(request):
            raise PermissionDenied("Only Managers may promote models.")
        run = get_object_or_404(EvalRun.objects.select_related("task"), pk=pk)
        form = PromoteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = model_version_promote(eval_run=run, user=request.user,
                                                override_reason=form.cleaned_data["override_reason"])
            except PromotionRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{version.model_name} is now the active model of {run.task}"
                                           + ("" if version.policy_passed else " (policy overridden)") + ".")
                return HttpResponseRedirect(reverse("admin:finetune_modelversion_change", args=[version.pk]))
        checks, comparison = promotion_checks(eval_run=run)
        passed = all(c["passed"] for c in checks)
        body = [format_html("<p>Promote <b>{}</b> ({}) as the active model of <b>{}</b>? Estimates use it from the next "
                            "request on.</p>", run.model_name, run.get_model_kind_display(), run.task),
                _table(["Rule", "Result", "Detail"], [(c["name"], "PASS" if c["passed"] else "FAIL", c["message"]) for c in checks])]
        body.insert(0, render_to_string(SIMULATED_BADGE, {"simulated": run.is_simulated}))
        warning = lifecycle_warning(eval_run_lifecycle(run))
        if warning:  # promoting a model that stops serving soon only moves the problem
            body.insert(1, format_html('<p class="errornote lifecycle-warning">⚠ {}: {}</p>', run.model_name, warning))
        if not passed:
            body.append(format_html('<p class="errornote">{}</p>', "The policy fails: promoting needs an override reason, "
                                                                    "which is recorded in the report and the model card."))
        if comparison:
            body.append(format_html("<h3>{}</h3>", "Against the active model"))
            body.append(comparison_html(comparison))
        return _page(request, self, title=f"Promote eval run {run.pk}", form=form,
                     body=format_html_join("", "{}", ((p,) for p in body)),
                     submit="Promote" if passed else "Promote with override")

    # actions
    @admin.action(description="Compare the two selected runs (paired)", permissions=["view"])
    def compare_selected(self, request, queryset):
        ids = sorted(queryset.values_list("pk", flat=True))
        if len(ids) != 2:
            self.message_user(request, "Select exactly two eval runs to compare.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_compare", args=ids))

    @admin.action(description="Resume the selected runs (asks only examples without a result)", permissions=["run_eval"])
    def resume_selected(self, request, queryset):
        resumed = 0
        for run in queryset:
            try:
                eval_run_resume(eval_run=run, user=request.user)
                resumed += 1
            except (EvalError, QueueUnavailable) as exc:
                self.message_user(request, f"Run {run.pk}: {exc}", messages.ERROR)
        if resumed:
            self.message_user(request, f"{resumed} eval run(s) queued again.")

    @admin.action(description="Promote the selected run's model…", permissions=["promote"])
    def promote_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one eval run to promote.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:finetune_evalrun_promote", args=[queryset.get().pk]))


def few_shot_facts_html(run: EvalRun):
    """k, the similarity rule, where the shots come from and the input the run sends (estimated, then measured)."""
    try:
        estimate = few_shot_run_estimate(eval_run=run)
    except Exception as exc:  # a version changed since: the facts still show, the estimate says why it is missing
        estimate = {"error": f"{type(exc).__name__}: {exc}"}
    return render_to_string("admin/finetune/evals/_few_shot_facts.html", {
        "run": run, "config": run.few_shot, "estimate": estimate, "cost": usd(estimate.get("input_cost_usd")),
        "measured_cost": usd(run.cost_usd), "done": run.status == EvalRun.Status.DONE})


def comparison_html(c: dict):
    parts = [format_html("<p>{} shared examples ({} only in A, {} only in B). B better on <b>{}</b>, worse on <b>{}</b>, "
                         "ties {}. Differences are B − A with bootstrap 95 % intervals; for MAPE negative is better.</p>",
                         c["n_shared"], c["only_a"], c["only_b"], c["b_wins"], c["b_losses"], c["ties"])]
    rows = []
    jv = c["json_validity"]
    rows.append(("JSON validity", _pct(jv["a"]), _pct(jv["b"]), _pct(jv["diff"]),
                 f"{_pct(jv['ci'][0])} – {_pct(jv['ci'][1])}" if jv["ci"] else "—"))
    for path_, n in c["numeric"].items():
        rows.append((f"MAPE {path_}", _pct(n["mape_a"]), _pct(n["mape_b"]), _pct(n["diff"]),
                     f"{_pct(n['ci'][0])} – {_pct(n['ci'][1])}" if n["ci"] else "—"))
    for field, n in c["categorical"].items():
        rows.append((f"Exact match {field}", _pct(n["a"]), _pct(n["b"]), _pct(n["diff"]),
                     f"{_pct(n['ci'][0])} – {_pct(n['ci'][1])}" if n["ci"] else "—"))
    parts.append(_table(["Field", "A", "B", "B − A", "95 % CI"], rows))
    examples = Example.objects.select_related("drawing").in_bulk([r["id"] for r in c["largest_differences"]])
    parts.append(format_html("<h4>{}</h4>", "Largest differences per example (mean APE)"))
    parts.append(_table(["Drawing", "Example", "A", "B", "B − A"],
                        [(_drawing_cell(examples.get(r["id"])), f"#{r['id']}", _pct(r["score_a"]), _pct(r["score_b"]),
                          _pct(r["diff"])) for r in c["largest_differences"]]))
    return format_html_join("", "{}", ((p,) for p in parts))


@admin.register(EvalResult)
class EvalResultAdmin(admin.ModelAdmin):
    list_display = ["id", "eval_run", "example", "status", "error_kind", "latency_ms", "input_tokens", "output_tokens", "cost_display"]
    list_filter = ["status", "error_kind"]
    list_select_related = ["eval_run", "example__task"]
    readonly_fields = [f.name for f in EvalResult._meta.fields if f.name != "cost_usd"] + ["cost_display"]
    exclude = ["cost_usd"]

    @admin.display(description="cost", ordering="cost_usd")
    def cost_display(self, obj):
        return usd(obj.cost_usd)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- registry ---------------------------------------------------------------------------------
def serves_until_html(lifecycle):
    """A model's shutdown date and the one lifecycle warning (curation's), for the registry and fallback lists."""
    date = f"{lifecycle.shutdown_date:%Y-%m-%d}" if lifecycle.shutdown_date else "no shutdown date known"
    warning = lifecycle_warning(lifecycle)
    return format_html('{} <span class="lifecycle-warning">⚠ {}</span>', date, warning) if warning else date


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "model_name", "kind", "provider", "is_active", "serves_until", "policy_passed", "promoted_by",
                    "promoted_at", "downloads"]
    list_filter = ["task", "is_active", "kind"]
    list_select_related = ["task", "training_run__base_model", "promoted_by"]
    actions = ["activate_selected"]
    readonly_fields = ["task", "model_name", "provider", "deployment_name", "kind", "serves_until", "training_run",
                       "eval_run", "is_active", "promoted_by", "promoted_at", "policy_passed", "override_reason",
                       "downloads", "model_card_display", "report_display"]
    exclude = ["report", "model_card", "prompt_text"]
    # The changelist shows the lifecycle warnings box (the admin index shows the same include).
    change_list_template = "admin/finetune/modelversion/change_list.html"

    @admin.display(description="serves until")
    def serves_until(self, obj):
        return serves_until_html(model_version_lifecycle(obj))

    def has_add_permission(self, request):
        return False  # a version is made by promoting an eval run

    def has_change_permission(self, request, obj=None):
        return False

    def has_promote_permission(self, request):
        return request.user.has_perm("finetune.promote_model")

    @admin.display(description="download")
    def downloads(self, obj):
        return format_html('<a href="{}">model card (.md)</a> · <a href="{}">report (.json)</a>',
                           reverse("admin:finetune_modelversion_card", args=[obj.pk]),
                           reverse("admin:finetune_modelversion_report", args=[obj.pk]))

    @admin.display(description="model card")
    def model_card_display(self, obj):
        return format_html('<pre style="white-space:pre-wrap;max-width:1000px">{}</pre>', obj.model_card)

    @admin.display(description="report")
    def report_display(self, obj):
        return format_html('<pre style="max-height:500px;overflow:auto">{}</pre>', json.dumps(obj.report, indent=2)[:200_000])

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/model-card.md", wrap(self.card_view), name="finetune_modelversion_card"),
            path("<int:pk>/report.json", wrap(self.report_view), name="finetune_modelversion_report"),
        ] + super().get_urls()

    def card_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=pk)
        response = HttpResponse(version.model_card, content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="model-card-{version.task.slug}-{version.pk}.md"'
        return response

    def report_view(self, request, pk):
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=pk)
        response = HttpResponse(json.dumps(version.report, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="promotion-report-{version.task.slug}-{version.pk}.json"'
        return response

    @admin.action(description="Make the selected version the active model of its task", permissions=["promote"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version.", messages.ERROR)
            return
        version = model_version_activate(model_version=queryset.get(), user=request.user)
        self.message_user(request, f"{version.model_name} is now the active model of {version.task}.")


class TaskFallbackForm(forms.ModelForm):
    provider = forms.ChoiceField(choices=())

    class Meta:
        model = TaskFallback
        fields = ["task", "model_name", "provider", "prompt_text", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = [(p, p) for p in available_providers() if p != "dryrun"] or [("openai", "openai")]


@admin.register(TaskFallback)
class TaskFallbackAdmin(admin.ModelAdmin):
    """A task's fallback model: answers estimates when the active model is gone or its provider keeps failing."""

    form = TaskFallbackForm
    list_display = ["task", "model_name", "provider", "serves_until", "updated_by", "updated_at"]
    list_select_related = ["task", "updated_by"]
    readonly_fields = ["serves_until", "updated_by", "updated_at"]

    @admin.display(description="serves until")
    def serves_until(self, obj):
        if obj is None or not obj.model_name:
            return "—"
        return serves_until_html(model_lifecycle(model_name=obj.model_name))

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user  # who chose it is part of the record
        super().save_model(request, obj, form, change)


# --- estimates --------------------------------------------------------------------------------
@admin.action(description="Estimate with the task's active model")
def estimate_drawings(modeladmin, request, queryset, *, task_slug: str = "technology_builder"):
    """On the drawings admin (added by finetune/admin/__init__.py): one estimate per selected drawing."""
    if not request.user.has_perm("finetune.add_estimate"):
        raise PermissionDenied
    task = Task.objects.filter(slug=task_slug).first()
    made = 0
    for drawing in queryset:
        try:
            estimate_create(drawing=drawing, task=task, user=request.user)
            made += 1
        except EstimateError as exc:
            modeladmin.message_user(request, f"{drawing}: {exc}", messages.ERROR)
    if made:
        modeladmin.message_user(request, f"{made} estimate(s) made; see Estimates.")


@admin.register(Estimate)
class EstimateAdmin(admin.ModelAdmin):
    list_display = ["id", "drawing", "task", "model_name", "provider", "answered_by", "summary", "error_kind", "latency_ms",
                    "cost_display", "corrected", "created_at"]
    list_filter = ["task", "provider", "answered_by", "error_kind"]
    search_fields = ["drawing__part_number", "model_name"]
    list_select_related = ["drawing", "task"]
    readonly_fields = ["task", "drawing_display", "model_version", "model_name", "provider", "answered_by", "fallback_reason",
                       "output_display", "raw_output",
                       "error_kind", "error", "latency_ms", "input_tokens", "output_tokens", "cost_display", "created_by",
                       "created_at", "corrected_target", "corrected_by", "corrected_at", "example", "correct_link"]
    exclude = ["drawing", "output", "cost_usd"]

    @admin.display(description="cost", ordering="cost_usd")
    def cost_display(self, obj):
        return usd(obj.cost_usd)

    def has_add_permission(self, request):
        return request.user.has_perm("finetune.add_estimate")

    def has_change_permission(self, request, obj=None):
        return False

    def has_correct_permission(self, request):
        return request.user.has_perm("finetune.correct_estimate")

    @admin.display(description="answer")
    def summary(self, obj):
        if not isinstance(obj.output, dict):
            return "—"
        ops = obj.output.get("operations") or []
        return ", ".join(f"{o.get('machine')} {o.get('operation')} {o.get('machine_time_min_per_piece')} min"
                         for o in ops if isinstance(o, dict))[:200] or "—"

    @admin.display(boolean=True)
    def corrected(self, obj):
        return bool(obj.corrected_at)

    @admin.display(description="drawing")
    def drawing_display(self, obj):
        return _drawing_cell(type("E", (), {"drawing": obj.drawing})())

    @admin.display(description="output")
    def output_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.output, indent=2, ensure_ascii=False) if obj.output is not None else "—")

    @admin.display(description="correction")
    def correct_link(self, obj):
        return format_html('<a class="button" href="{}">Correct this estimate</a>',
                           reverse("admin:finetune_estimate_correct", args=[obj.pk]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("estimate/", wrap(self.estimate_view), name="finetune_estimate_create"),
            path("<int:pk>/correct/", wrap(self.correct_view), name="finetune_estimate_correct"),
        ] + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:finetune_estimate_create"))

    def estimate_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EstimateForm(request.POST or None, initial={"task": Task.objects.filter(slug="technology_builder").first(),
                                                           "drawing": request.GET.get("drawing")})
        if request.method == "POST" and form.is_valid():
            try:
                estimate = estimate_create(drawing=form.cleaned_data["drawing"], task=form.cleaned_data["task"], user=request.user)
            except EstimateError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                level = messages.WARNING if estimate.error or estimate.fallback_reason else messages.SUCCESS
                by = f" (the task's fallback: {estimate.fallback_reason})" if estimate.fallback_reason else ""
                self.message_user(request, f"Estimate {estimate.pk} by {estimate.model_name}{by}"
                                           + (f": {estimate.error}" if estimate.error else "."), level)
                return HttpResponseRedirect(reverse("admin:finetune_estimate_change", args=[estimate.pk]))
        return _page(request, self, title="Estimate a drawing", form=form, submit="Ask the active model",
                     body=format_html("<p>{}</p>", "The task's active model (see Model versions) answers now."))

    def correct_view(self, request, pk):
        if not self.has_correct_permission(request):
            raise PermissionDenied
        estimate = get_object_or_404(Estimate.objects.select_related("task", "drawing"), pk=pk)
        initial = estimate.corrected_target or (json.dumps(estimate.output, indent=2, ensure_ascii=False)
                                                if estimate.output is not None else estimate.raw_output)
        form = CorrectForm(request.POST or None, initial={"target_text": initial})
        if request.method == "POST" and form.is_valid():
            try:
                estimate = estimate_correct(estimate=estimate, user=request.user, target_text=form.cleaned_data["target_text"])
            except TargetInvalid as exc:
                form.add_error("target_text", str(exc))
            else:
                self.message_user(request, f"Saved: pending example {estimate.example_id} made for review.")
                return HttpResponseRedirect(reverse("admin:finetune_estimate_change", args=[estimate.pk]))
        return _page(request, self, title=f"Correct estimate {estimate.pk} ({estimate.drawing})", form=form,
                     submit="Save the correction as a pending example",
                     body=mark_safe(str(_drawing_cell(type("E", (), {"drawing": estimate.drawing})()))))
