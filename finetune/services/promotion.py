"""Promotion and the model registry: the task's policy decides, a Manager may override with a reason.

The active model of a task is a database row (`ModelVersion.is_active`, one per task by constraint)
read at request time by `model_version_active`, so switching models needs no code edit and no restart.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction

from curation.models import Task
from curation.provider_names import is_simulated_provider
from finetune import metrics as metric_lib
from finetune.metrics import pct
from finetune.models import EvalRun, ModelKind, ModelVersion
from finetune.services.eval_results import eval_run_records
from finetune.services.evals import eval_run_leak
from finetune.services.model_cards import model_card_render, promotion_report

# Applied when a task's policy does not set them: below 20 examples, or with a 95 % interval wider than
# 20 percentage points, an evaluation cannot tell a good model from a lucky one.
DEFAULT_POLICY = {"min_examples": 20, "max_ci_width": 0.20}


class PromotionRefused(Exception):
    """The policy fails and no override reason was given; `checks` says which rule and by how much."""

    def __init__(self, message: str, checks: list[dict] | None = None):
        super().__init__(message)
        self.checks = checks or []


# --- registry (read at request time) ----------------------------------------------------------
def model_version_active(*, task: Task) -> ModelVersion | None:
    return ModelVersion.objects.filter(task=task, is_active=True).select_related("eval_run").first()


def simulated_model_refusal(*, task: Task, provider: str, model_name: str) -> str:
    """Why a model may not serve `task` because it is simulated ('' when it may): the simulated provider's answers
    are made up from the ground truth, so only a task the demo loader made (Task.demo) may promote or ask one."""
    if not is_simulated_provider(provider) or task.demo:
        return ""
    return (
        f"{model_name} is a simulated model (the demo's provider, answers made up from the ground truth) and "
        f"task {task.slug} is not a demo task: a simulated model never serves a real task. Evaluate and promote "
        "a real model (configure a provider key)."
    )


def provider_tag(*, provider: str, kind: str) -> str:
    """`openai` for a base model, `openai_ft` for a fine-tuned model or checkpoint (same for azure)."""
    return f"{provider}_ft" if kind in (ModelKind.FINE_TUNED, ModelKind.CHECKPOINT) else provider


# --- policy -----------------------------------------------------------------------------------
def promotion_policy(task: Task) -> dict:
    """The task's policy over the defaults (a task may set its own minimum and interval width)."""
    return {**DEFAULT_POLICY, **(task.promotion_policy or {})}


def primary_numeric_path(task: Task) -> str | None:
    spec = task.metric_spec or {}
    policy = task.promotion_policy or {}
    numeric = spec.get("numeric") or []
    return policy.get("mape_field") or (numeric[0] if numeric else None)


def _check(name, passed, value, threshold, message) -> dict:
    return {"name": name, "passed": bool(passed), "value": value, "threshold": threshold, "message": message}


def promotion_checks(*, eval_run: EvalRun) -> tuple[list[dict], dict | None]:
    """The task's policy applied to a done eval run: ([{name, passed, value, threshold, message}], comparison vs
    active)."""
    task = eval_run.task
    policy = promotion_policy(task)
    metrics = eval_run.metrics or {}
    checks = [
        _check(
            "run_done",
            eval_run.status == EvalRun.Status.DONE,
            eval_run.status,
            "done",
            f"Eval run {eval_run.pk} is {eval_run.status}.",
        )
    ]
    leak = eval_run_leak(eval_run)
    checks.append(
        _check(
            "unseen_examples",
            not leak,
            eval_run.split,
            "examples the model never trained on",
            leak or f"Evaluated on the {eval_run.split} split: no example was trained on.",
        )
    )
    path = primary_numeric_path(task)
    if policy.get("min_examples") is not None:
        n = metrics.get("n_evaluated", 0)
        limit = int(policy["min_examples"])
        checks.append(
            _check(
                "min_examples",
                n >= limit,
                n,
                limit,
                f"{n} example(s) evaluated (minimum {limit})"
                + (
                    "."
                    if n >= limit
                    else ": too few to tell a better model from a lucky one; evaluate on a larger validation split."
                ),
            )
        )
    if policy.get("max_ci_width") is not None:
        checks.append(_ci_width_check(metrics, path, float(policy["max_ci_width"])))
    if "max_mape" in policy and path:
        value = ((metrics.get("numeric") or {}).get(path) or {}).get("mape", {}).get("value")
        limit = float(policy["max_mape"])
        checks.append(
            _check(
                "max_mape",
                value is not None and value <= limit,
                value,
                limit,
                f"MAPE of {path} is {pct(value)} (limit {pct(limit)}).",
            )
        )
    if "min_json_validity" in policy:
        value = (metrics.get("json_validity") or {}).get("value")
        limit = float(policy["min_json_validity"])
        checks.append(
            _check(
                "min_json_validity",
                value is not None and value >= limit,
                value,
                limit,
                f"JSON validity is {pct(value)} (minimum {pct(limit)}).",
            )
        )
    if "min_schema_validity" in policy:
        value = (metrics.get("schema_validity") or {}).get("value")
        limit = float(policy["min_schema_validity"])
        checks.append(
            _check(
                "min_schema_validity",
                value is not None and value >= limit,
                value,
                limit,
                f"Schema validity is {pct(value)} (minimum {pct(limit)}).",
            )
        )

    comparison = None
    active = model_version_active(task=task)
    if policy.get("not_worse_than_active") and active is not None and eval_run.status == EvalRun.Status.DONE:
        baseline = active.eval_run
        if baseline is None or baseline.status != EvalRun.Status.DONE:
            checks.append(
                _check(
                    "not_worse_than_active",
                    False,
                    None,
                    "no worse beyond the 95 % CI",
                    f"The active model {active.model_name} has no finished eval run to compare with.",
                )
            )
        elif baseline.pk == eval_run.pk:
            checks.append(
                _check(
                    "not_worse_than_active",
                    True,
                    0,
                    "no worse beyond the 95 % CI",
                    "This eval run is the active model's own.",
                )
            )
        else:
            comparison = metric_lib.compare_runs(
                eval_run_records(baseline),
                eval_run_records(eval_run),
                task.metric_spec or {},
                n_boot=int(getattr(settings, "EVAL_BOOTSTRAP_SAMPLES", 1000)),
            )
            comparison["a"] = {"id": baseline.pk, "model": baseline.model_name}
            comparison["b"] = {"id": eval_run.pk, "model": eval_run.model_name}
            checks.append(_not_worse_check(comparison, path, active))
    return checks, comparison


def _ci_width_check(metrics: dict, path: str | None, limit: float) -> dict:
    """The 95 % interval of the deciding metric (MAPE of the primary field, else JSON validity) is narrow enough."""
    if path and path in (metrics.get("numeric") or {}):
        name, block = f"MAPE of {path}", metrics["numeric"][path].get("mape") or {}
    else:
        name, block = "JSON validity", metrics.get("json_validity") or {}
    ci = block.get("ci")
    if not ci:
        return _check("max_ci_width", False, None, limit, f"{name} has no confidence interval (no examples evaluated).")
    width = ci[1] - ci[0]
    return _check(
        "max_ci_width",
        width <= limit + 1e-12,
        round(width, 6),
        limit,
        f"The 95 % CI of {name} is {width * 100:.1f} points wide ({pct(ci[0])}–{pct(ci[1])}; maximum "
        f"{limit * 100:.1f})" + ("." if width <= limit + 1e-12 else ": the estimate is too uncertain to promote on."),
    )


def _not_worse_check(comparison: dict, path: str | None, active: ModelVersion) -> dict:
    threshold = "no worse beyond the 95 % CI"
    if not comparison["n_shared"]:
        return _check(
            "not_worse_than_active",
            False,
            None,
            threshold,
            f"No example was evaluated by both this model and the active {active.model_name}: "
            "evaluate both on the same dataset version.",
        )
    # Worse "beyond the interval": the whole 95 % interval of the paired difference is on the bad side.
    problems = []
    numeric = comparison["numeric"].get(path) if path else None
    if numeric and numeric["ci"] and numeric["ci"][0] > 0:
        problems.append(
            f"MAPE is higher by {pct(numeric['diff'])} (95 % CI {pct(numeric['ci'][0])} to {pct(numeric['ci'][1])})"
        )
    validity = comparison["json_validity"]
    if validity["ci"] and validity["ci"][1] < 0:
        problems.append(f"JSON validity is lower by {pct(-validity['diff'])}")
    diff = numeric["diff"] if numeric else None
    message = (
        ("; ".join(problems) + f" than the active {active.model_name}.")
        if problems
        else (
            f"Not worse than the active {active.model_name} on {comparison['n_shared']} shared examples"
            + (f" (MAPE difference {pct(diff)})." if diff is not None else ".")
        )
    )
    return _check("not_worse_than_active", not problems, diff, threshold, message)


# --- promote / activate -----------------------------------------------------------------------
def _require_promote(user) -> None:
    if user is None or not user.has_perm("finetune.promote_model"):
        raise PermissionDenied("Only Managers may promote models.")


def model_version_promote(*, eval_run: EvalRun, user, override_reason: str = "") -> ModelVersion:
    """Make the evaluated model the task's active one; refused while the policy fails unless a reason is given."""
    _require_promote(user)
    eval_run = EvalRun.objects.select_related("task", "dataset_version__dataset").get(pk=eval_run.pk)
    if eval_run.status != EvalRun.Status.DONE:
        raise PromotionRefused(
            f"Eval run {eval_run.pk} is {eval_run.status}: only a finished evaluation can be promoted."
        )
    override_reason = (override_reason or "").strip()
    simulated = simulated_model_refusal(task=eval_run.task, provider=eval_run.provider, model_name=eval_run.model_name)
    if simulated:
        raise PromotionRefused(f"Promotion refused: {simulated} No override can change this.")
    with transaction.atomic():
        # Lock the task row: two promotions of one task run one after the other.
        task = Task.objects.select_for_update().get(pk=eval_run.task_id)
        checks, comparison = promotion_checks(eval_run=eval_run)
        passed = all(c["passed"] for c in checks)
        if not passed and not override_reason:
            failed = "; ".join(c["message"] for c in checks if not c["passed"])
            raise PromotionRefused(
                f"The promotion policy fails: {failed} Give an override reason to promote anyway.", checks
            )
        previous = model_version_active(task=task)
        ModelVersion.objects.filter(task=task, is_active=True).update(is_active=False)
        # A base model evaluated beside a training run (its baseline) was not made by that run.
        training_run = eval_run.training_run if eval_run.model_kind != ModelKind.BASE else None
        version = ModelVersion.objects.create(
            task=task,
            model_name=eval_run.model_name,
            provider=eval_run.provider,
            kind=eval_run.model_kind,
            deployment_name=eval_run.deployment_name,
            prompt_text=eval_run.prompt_text,
            training_run=training_run,
            eval_run=eval_run,
            is_active=True,
            promoted_by=user,
            policy_passed=passed,
            override_reason="" if passed else override_reason,
            endpoint=eval_run.endpoint,
            few_shot=eval_run.few_shot,  # served as evaluated: same endpoint, same shots
        )
        version.report = promotion_report(version=version, checks=checks, comparison=comparison, previous=previous)
        version.model_card = model_card_render(version=version)
        version.save(update_fields=["report", "model_card"])
    return version


def model_version_activate(*, model_version: ModelVersion, user) -> ModelVersion:
    """Switch the registry back (or forth) to an already promoted version, e.g. a rollback."""
    _require_promote(user)
    simulated = simulated_model_refusal(
        task=model_version.task, provider=model_version.provider, model_name=model_version.model_name
    )
    if simulated:
        raise PromotionRefused(f"Activation refused: {simulated}")
    with transaction.atomic():
        Task.objects.select_for_update().get(pk=model_version.task_id)
        ModelVersion.objects.filter(task_id=model_version.task_id, is_active=True).exclude(pk=model_version.pk).update(
            is_active=False
        )
        ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True)
    model_version.refresh_from_db()
    return model_version
