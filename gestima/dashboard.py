"""The admin index as a cockpit: the pipeline, each task's readiness and model, work under way, money, next steps.

Reads only, across both apps (so it lives in the project package). Every figure is aggregated in the database
and every list is cut at `WORK_LIMIT`, so the page costs the same queries at 100 examples as at 100,000.
`dashboard_context` computes a section only for a user whose permissions allow it: what a role may not see is
never read, so it can never leak into the page.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Case, Count, Exists, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.urls import reverse
from django.utils import timezone

from curation.models import DatasetBuild, DatasetVersion, Drawing, Example, ExampleChange, ProductionImport, Task
from curation.selectors import example_status_counts
from curation.services.drawings import RENDER_ACTIVE, drawing_render_progress
from curation.services.export_queue import EXPORT_BUSY, export_progress
from finetune.metrics import pct_with_ci
from finetune.models import Estimate, EvalRun, ModelVersion, TrainingRun
from finetune.selectors import model_version_lifecycle, runs_progress_facts
from finetune.services.evals import eval_run_progress
from finetune.services.run_counts import run_count
from finetune.services.run_launch import training_run_over_budget
from gestima.charts import chart_spec
from gestima.live_accuracy import eval_mape_block, live_accuracy
from gestima.work import ACTIVE, work_row_progress

REVIEW_DAYS = 30
# Rows per list of work under way; the rest is one click away in the filtered changelist.
WORK_LIMIT = 10
# The decisions a reviewer makes (ExampleChange rows of field "status"); only the system moves back to pending.
DECISIONS = (Example.Status.APPROVED, Example.Status.REJECTED, Example.Status.NEEDS_CHANGES)
EVALUATING = (EvalRun.Status.QUEUED, EvalRun.Status.RUNNING)
# Runs that are under way: launched and not finished (a draft is not under way until someone launches it).
RUNS_IDLE = (*TrainingRun.Status.TERMINAL, TrainingRun.Status.DRAFT)


@dataclass(frozen=True)
class Step:
    """One next step: the sentence a person reads and where the link takes them."""

    text: str
    url: str


def _changelist(name: str, query: str = "") -> str:
    return reverse(f"admin:{name}_changelist") + (f"?{query}" if query else "")


# --- pipeline ------------------------------------------------------------------------------------


def drawing_status_counts() -> dict[str, int]:
    """{status: count} for every drawing status (zeros included), one aggregate query."""
    counts = dict.fromkeys(Drawing.Status.values, 0)
    # COUNT(*): PostgreSQL reads the status index alone (COUNT(id) needs the rows), as example_status_counts.
    for row in Drawing.objects.order_by().values("status").annotate(n=Count("*")):
        counts[row["status"]] = row["n"]
    return counts


def review_queue(*, status_counts: dict[str, int]) -> dict:
    """The review queue: its size (from `example_status_counts`, the figure the examples card shows too), its
    oldest pending example, and the examples whose ground truth changed under a reviewed target (the flag the
    example list filters on: `ground_truth_target` holds the new ground truth)."""
    # The status index serves the first query; only the drift count reads every row.
    oldest = Example.objects.filter(status=Example.Status.PENDING).aggregate(oldest=Min("created_at"))["oldest"]
    return {
        "pending": status_counts[Example.Status.PENDING],
        "oldest": oldest,
        "oldest_days": (timezone.now() - oldest).days if oldest else None,
        "ground_truth_changed": Example.objects.exclude(ground_truth_target="").count(),
    }


def _day_number(starts: list[datetime.datetime], lo: int = 0, hi: int | None = None) -> Case | Value:
    """The number of the day (0 for the first) that `at` falls in, from `starts` (the day boundaries, one more
    than the days): a binary search written as nested CASEs, about five comparisons a row for 30 days."""
    hi = len(starts) - 1 if hi is None else hi
    if hi - lo == 1:
        return Value(lo)
    mid = (lo + hi) // 2
    return Case(When(at__lt=starts[mid], then=_day_number(starts, lo, mid)), default=_day_number(starts, mid, hi))


def reviews_per_day(*, days: int = REVIEW_DAYS, today: datetime.date | None = None) -> dict:
    """Review decisions per day and reviewer over the last `days` days (today included), as a chart spec.

    One query, one row per reviewer and day: the day boundaries are computed here in the project's time zone and
    compared in the database, which SQLite does natively (a per-row TruncDate would call back into Python for
    every decision: most of the page's time at 20,000 decisions). The decisions are read from a partial index
    of status changes alone (ExampleChange.Meta)."""
    today = today or timezone.localdate()
    first = today - datetime.timedelta(days=days - 1)
    starts = [
        timezone.make_aware(datetime.datetime.combine(first + datetime.timedelta(days=i), datetime.time.min))
        for i in range(days + 1)
    ]
    rows = (
        ExampleChange.objects.filter(
            field="status", after__in=DECISIONS, at__gte=starts[0], at__lt=starts[-1], user__isnull=False
        )
        .annotate(day=_day_number(starts))
        .values("user__username", "day")
        .annotate(n=Count("*"))  # not Count("id"): the id is not in the index
        .order_by("user__username", "day")
    )
    per_user: dict[str, list[int]] = {}
    for row in rows:
        per_user.setdefault(row["user__username"], [0] * days)[row["day"]] = row["n"]
    return chart_spec(
        title=f"Review decisions per day and reviewer, last {days} days",
        kind="bar",
        stacked=True,
        integer=True,
        x_label="Day",
        y_label="Decisions (approve, reject, needs changes)",
        unit="decisions",
        labels=[(first + datetime.timedelta(days=i)).isoformat() for i in range(days)],
        series=[{"name": name, "values": values} for name, values in per_user.items()],
    )


# --- per task --------------------------------------------------------------------------------------


def _mape(version: ModelVersion, task: Task) -> str:
    """The MAPE (with its 95 % interval) of the eval run that promoted the model, on the field promotion
    decides on; the eval pages format it with the same function."""
    return pct_with_ci(eval_mape_block(version=version, task=task), missing="no evaluation")


def _latest_versions(task_ids: list[int]) -> dict[int, list[DatasetVersion]]:
    """The newest version of every dataset of these tasks, with its stored gates (never recomputed here: the
    build froze them) and whether a training run uses it yet. One query."""
    newest = DatasetVersion.objects.filter(dataset=OuterRef("dataset")).order_by("-number").values("number")[:1]
    versions = (
        DatasetVersion.objects.filter(dataset__task_id__in=task_ids, number=Subquery(newest))
        .annotate(has_runs=Exists(TrainingRun.objects.filter(dataset_version=OuterRef("pk"))))
        .select_related("dataset")
        .only("id", "number", "gates", "gates_passed", "counts", "dataset__name", "dataset__task_id", "created_at")
        .order_by("dataset__name")
    )
    by_task: dict[int, list[DatasetVersion]] = {}
    for version in versions:
        by_task.setdefault(version.dataset.task_id, []).append(version)
    return by_task


def task_rows(*, datasets: bool, models: bool) -> list[dict]:
    """Per task: its datasets' readiness (when `datasets`) and its active model with MAPE, shutdown date and
    days left (when `models`), the dates from curation's one lifecycle rule."""
    tasks = list(Task.objects.order_by("slug").only("id", "slug", "name", "metric_spec", "promotion_policy"))
    versions = _latest_versions([t.pk for t in tasks]) if datasets else {}
    active = {}
    if models:
        active = {
            v.task_id: v
            for v in ModelVersion.objects.filter(is_active=True).select_related("eval_run", "training_run__base_model")
        }
    rows = []
    for task in tasks:
        row = {"task": task, "versions": versions.get(task.pk, [])}
        version = active.get(task.pk)
        if version is not None:
            lifecycle = model_version_lifecycle(version)
            row["model"] = {
                "version": version,
                "mape": _mape(version, task),
                "lifecycle": lifecycle,
                "days_left": lifecycle.days_to_shutdown(),
            }
        rows.append(row)
    return rows


# --- work under way ---------------------------------------------------------------------------------


def _cut(queryset) -> dict:
    """The first `WORK_LIMIT` rows and how many there are: two queries, whatever the count (counting only
    when the list is full would make the page's query count depend on the data)."""
    rows = list(queryset[:WORK_LIMIT])
    total = queryset.count()
    return {"rows": rows, "total": total, "more": total - len(rows)}


def renders_under_way() -> dict:
    work = _cut(
        Drawing.objects.filter(status__in=RENDER_ACTIVE)
        .order_by("created_at")
        .only(
            "id", "part_number", "original_name", "status", "render_attempts", "created_at", "page_count", "pages_done"
        )
    )
    for drawing in work["rows"]:
        drawing.progress = drawing_render_progress(drawing)  # as the drawing's own page says it
    return work


def exports_under_way() -> dict:
    work = _cut(
        DatasetVersion.objects.filter(export_status__in=EXPORT_BUSY)
        .select_related("dataset")
        .only("id", "number", "dataset__name", "export_status", "export_progress", "counts")
        .order_by("pk")
    )
    for version in work["rows"]:
        version.progress = export_progress(version)
    return work


def builds_under_way() -> dict:
    work = _cut(
        DatasetBuild.objects.filter(status__in=ACTIVE)
        .select_related("dataset")
        .only("id", "dataset__name", "status", "done", "total", "stage", "created_at")
        .order_by("pk")
    )
    for build in work["rows"]:
        build.progress = work_row_progress(build)
    return work


def imports_under_way() -> dict:
    work = _cut(
        ProductionImport.objects.filter(status__in=ACTIVE)
        .only("id", "source_name", "status", "done", "total", "stage", "created_at")
        .order_by("pk")
    )
    for row in work["rows"]:
        row.progress = work_row_progress(row)
    return work


def runs_under_way() -> dict:
    """Launched runs not finished, each with its cost against its budget: the estimate stored at launch (from
    the one cost function, training_run_cost) or the provider's actual cost, and the one budget rule."""
    work = _cut(
        TrainingRun.objects.exclude(status__in=RUNS_IDLE)
        .select_related("dataset_version__dataset", "base_model")
        .only(
            "id",
            "status",
            "provider",
            "budget_usd",
            "estimated_cost_usd",
            "actual_cost_usd",
            "launched_at",
            "n_epochs",
            "batch_size",
            "learning_rate_multiplier",
            "resolved_hyperparameters",
            "estimated_finish_at",
            "training_file_id",
            "validation_file_id",
            "dataset_version__number",
            "dataset_version__counts",
            "dataset_version__dataset__name",
            "base_model__name",
        )
        .order_by("-pk")
    )
    runs_progress_facts(work["rows"])  # a few queries for all of them, none per run
    for run in work["rows"]:
        run.over_budget = training_run_over_budget(run=run)
        run.progress = run_count(run)  # as the run's own page says it (files, then steps of total, finish)
    return work


def evals_under_way() -> dict:
    work = _cut(
        EvalRun.objects.filter(status__in=EVALUATING)
        .select_related("task")
        .only("id", "status", "model_name", "total", "done_count", "error_count", "task__slug")
        .order_by("-pk")
    )
    for run in work["rows"]:
        run.progress = eval_run_progress(run)
    return work


# --- money -------------------------------------------------------------------------------------------


def month_start(now: datetime.datetime | None = None) -> datetime.datetime:
    local = timezone.localtime(now or timezone.now())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _provider(tag: str) -> str:
    # Estimates carry a provider tag (`openai_ft` for a fine-tuned model, promotion.provider_tag): same bill.
    return tag.removesuffix("_ft")


def spend_this_month(*, now: datetime.datetime | None = None) -> dict:
    """Money this calendar month by provider: training (the provider's actual cost of runs launched this month,
    against the sum of their budgets), evaluations and estimates. Three aggregate queries. A cost nobody knows
    (no price, run not finished) is counted as unknown, never as $0."""
    since = month_start(now)
    by_provider: dict[str, dict] = {}

    def row(provider: str) -> dict:
        return by_provider.setdefault(
            _provider(provider),
            {
                "provider": _provider(provider),
                "training": None,
                "budget": None,
                "runs": 0,
                "unknown_runs": 0,
                "evals": None,
                "estimates": None,
            },
        )

    def add(target: dict, key: str, value) -> None:
        if value is not None:
            target[key] = (target[key] or 0) + value

    for r in (
        TrainingRun.objects.filter(launched_at__gte=since)
        .values("provider")
        .order_by()
        .annotate(
            spent=Sum("actual_cost_usd"),
            budget=Sum("budget_usd"),
            runs=Count("id"),
            unknown=Count("id", filter=Q(actual_cost_usd__isnull=True)),
        )
    ):
        target = row(r["provider"])
        add(target, "training", r["spent"])
        add(target, "budget", r["budget"])
        target["runs"] += r["runs"]
        target["unknown_runs"] += r["unknown"]
    for key, model in (("evals", EvalRun), ("estimates", Estimate)):
        spent = model.objects.filter(created_at__gte=since).values("provider").order_by().annotate(usd=Sum("cost_usd"))
        for r in spent:
            add(row(r["provider"]), key, r["usd"])
    rows = sorted(by_provider.values(), key=lambda r: r["provider"])
    for r in rows:
        r["total"] = sum(r[k] or 0 for k in ("training", "evals", "estimates"))
        r["over_budget"] = r["budget"] is not None and r["training"] is not None and r["training"] > r["budget"]
    return {
        "since": since,
        "rows": rows,
        "total": sum(r["total"] for r in rows),
        "budget": sum(r["budget"] or 0 for r in rows) if any(r["budget"] is not None for r in rows) else None,
    }


def spend_chart(spend: dict) -> dict:
    rows = spend["rows"]
    return chart_spec(
        title=f"Spent this month (since {spend['since']:%Y-%m-%d}) by provider, in US dollars",
        kind="bar",
        stacked=True,
        x_label="Provider",
        y_label="US dollars (USD)",
        unit="USD",
        labels=[r["provider"] for r in rows],
        series=[
            {"name": name, "values": [float(r[key] or 0) for r in rows]}
            for name, key in (("Training", "training"), ("Evaluations", "evals"), ("Estimates", "estimates"))
        ],
    )


# --- next steps ------------------------------------------------------------------------------------


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def next_steps(*, user, queue: dict | None, drawings: dict | None, tasks: list[dict]) -> list[Step]:
    """What this person can do next, each a link; only steps their permissions let them take."""
    steps = []
    if queue and user.has_perm("curation.review_example"):
        if queue["pending"]:
            steps.append(
                Step(
                    f"{_plural(queue['pending'], 'example waits', 'examples wait')} for review",
                    reverse("admin:curation_example_next_pending"),
                )
            )
        if queue["ground_truth_changed"]:
            steps.append(
                Step(
                    f"{_plural(queue['ground_truth_changed'], 'example', 'examples')} whose ground truth "
                    "changed: keep yours or take the new",
                    _changelist("curation_example", "ground_truth_changed=yes"),
                )
            )
    if drawings and drawings["failed"] and user.has_perm("curation.render_drawing"):
        steps.append(
            Step(
                f"{_plural(drawings['failed'], 'drawing', 'drawings')} failed to render: read why, render again",
                _changelist("curation_drawing", "status__exact=failed"),
            )
        )
    if user.has_perm("finetune.add_trainingrun"):
        for row in tasks:
            for version in row["versions"]:
                if version.gates_passed and not version.has_runs:
                    steps.append(
                        Step(
                            f"{version.dataset.name} v{version.number} is ready to launch",
                            reverse("admin:finetune_trainingrun_add") + f"?dataset_version={version.pk}",
                        )
                    )
    if user.has_perm("finetune.run_eval") and user.has_perm("finetune.view_trainingrun"):
        unevaluated = (
            TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED)
            .exclude(Exists(EvalRun.objects.filter(training_run=OuterRef("pk"))))
            .order_by("-pk")
            .values_list("pk", flat=True)[:WORK_LIMIT]
        )
        steps += [
            Step(f"run {pk} succeeded: evaluate it", reverse("admin:finetune_trainingrun_change", args=[pk]))
            for pk in unevaluated
        ]
    return steps


# --- the page --------------------------------------------------------------------------------------


def dashboard_context(*, user) -> dict:
    """The index's context for this user: a section is read only when their permissions show it."""
    can = user.has_perm
    see = {
        "examples": can("curation.view_example"),
        "drawings": can("curation.view_drawing"),
        "datasets": can("curation.view_datasetversion"),
        "models": can("finetune.view_modelversion"),
        "evals": can("finetune.view_evalrun"),
        "money": can("finetune.view_trainingrun"),
    }  # Managers: run costs and budgets live on runs
    context: dict = {"can_see": see, "tasks": []}
    if see["drawings"]:
        context["drawings"] = drawing_status_counts()
        context["renders"] = renders_under_way()
    if see["examples"]:
        context["examples"] = example_status_counts()
        context["queue"] = review_queue(status_counts=context["examples"])
        context["reviews_chart"] = reviews_per_day()
    if see["models"] or see["datasets"]:
        context["tasks"] = task_rows(datasets=see["datasets"], models=see["models"])
    if see["datasets"]:
        context["exports"] = exports_under_way()
        context["builds"] = builds_under_way()
    if can("curation.add_productionrecord"):  # who may upload an import sees the imports under way
        context["imports"] = imports_under_way()
    if see["money"]:
        context["runs"] = runs_under_way()
        context["spend"] = spend_this_month()
        context["spend_chart"] = spend_chart(context["spend"])
    if see["evals"]:
        context["evals"] = evals_under_way()
    if can("finetune.promote_model"):  # live accuracy: whether a promotion paid off is the Manager's call
        context["live_accuracy"] = live_accuracy()
    context["next_steps"] = next_steps(
        user=user, queue=context.get("queue"), drawings=context.get("drawings"), tasks=context["tasks"]
    )
    return {"dashboard": context}
