"""Benchmark: the example changelist (plain and filtered), the review screen and the dashboard (the admin index) at
100, 10,000 and 100,000 examples (with their history, and 1 training run per 100 examples).

Builds the rows with bulk_create in a throwaway SQLite database and media directory (benchmarks/_seed.py), growing
it from one size to the next, renders the pages with Django's test Client (the lists and the review screen as a
logged-in reviewer, the dashboard as a Manager, who reads every section), and prints the median wall time, CPU time
and query count of each. The query counts must not grow with the row count (the smallest size is the baseline);
the goals hold at the largest size: < 300 ms for the changelist, plain and filtered (status + tag + confidence +
search), < 150 ms for the review screen and < 300 ms for the dashboard. Exit status 1 when a goal or the
flat-queries check fails. The default run takes about two minutes, most of it building 100,000 examples;
`--large 10000` measures 100 and 10,000 only (about 15 s).

    .venv/bin/python benchmarks/admin.py [--runs 7] [--sizes 100,10000,100000 | --large N]
"""

import argparse
import datetime
import os
import random
import shutil
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import django_throwaway  # noqa: E402
from _seed import examples_create, tables_create  # noqa: E402

# DEBUG off: production-like template loading; DEBUG would also keep every query in memory.
WORKDIR = django_throwaway(
    "admin", ALLOWED_HOSTS="testserver", STATICFILES_BACKEND="django.contrib.staticfiles.storage.StaticFilesStorage"
)

from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

# No setup_test_environment(): its template instrumentation (for response.context) costs more than the
# page itself and a browser never pays it.
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from curation.models import (  # noqa: E402
    BaseModel,
    Dataset,
    DatasetVersion,
    Drawing,
    Example,
    ExampleChange,
    GroundTruth,
)
from curation.services.tasks import task_create_from_preset  # noqa: E402
from finetune.models import Estimate, EvalRun, ModelVersion, TrainingRun  # noqa: E402

# Pages and their goals at the largest size (median wall time); the filtered list is a changelist too.
GOALS_MS = {"changelist": 300, "filtered": 300, "review": 150, "dashboard": 300}
BUILD_BATCH = 10_000
RUN_STATUSES = ["succeeded"] * 6 + ["failed", "running", "queued", "cancelled"]
INDUSTRIES = ["automotive", "medical", "aerospace", "hydraulics", "food"]
MATERIALS = ["C45", "42CrMo4", "1.4301", "AlMgSi1", "CuZn39Pb3", "S355", "11SMnPb30", "POM"]
MACHINE_SETS = [["NZX 2000", "DMU 50"], ["NLX 2500"], ["VS20", "NLX 2500", "DMU 50"], ["MAZAK QTN 200"], ["DMU 50"]]
STATUSES = ["pending"] * 12 + ["approved"] * 5 + ["rejected"] * 2 + ["needs_changes"]


def build(*, task, users, start: int, stop: int, rng: random.Random) -> None:
    """Examples start..stop-1, each with its drawing, one page, ground truth and two history rows."""

    def fields(n: int, drawing) -> dict:
        status = rng.choice(STATUSES)
        decided = status != "pending"
        return {
            "status": status,
            "reviewer": rng.choice(users) if decided else None,
            "rejection_reason": "blurred" if status == "rejected" else "",
            "confidence": round(rng.random(), 2),
            "quality_score": round(rng.random(), 2) if rng.random() < 0.8 else None,
            "tags": {
                "industry": rng.choice(INDUSTRIES),
                "machine": rng.choice(MACHINE_SETS),
                "material": rng.choice(MATERIALS),
            },
            "is_near_duplicate": rng.random() < 0.03,
        }

    examples = examples_create(task=task, numbers=range(start, stop), prefix="P", fields=fields)
    GroundTruth.objects.bulk_create(
        [
            GroundTruth(
                part_number=example.group_key,
                material=rng.choice(MATERIALS),
                record_count=8,
                max_cv=0.2,
                high_cv=rng.random() < 0.1,
                operations=[
                    {
                        "machine": "NZX 2000",
                        "operation": "turning",
                        "machine_time_min_per_piece": 12.0,
                        "setup_min": 30.0,
                        "n": 8,
                        "cv": 0.12,
                    },
                    {
                        "machine": "DMU 50",
                        "operation": "milling",
                        "machine_time_min_per_piece": 6.5,
                        "setup_min": 25.0,
                        "n": 8,
                        "cv": 0.2,
                    },
                ],
            )
            for example in examples
        ],
        batch_size=2000,
    )
    ExampleChange.objects.bulk_create(
        [
            change
            for example in examples
            for change in (
                ExampleChange(
                    example=example, user=users[0], field="target", before="{}", after=example.target, note="built"
                ),
                ExampleChange(
                    example=example, user=rng.choice(users), field="status", before="pending", after=example.status
                ),
            )
        ],
        batch_size=4000,
    )


def build_runs(*, task, start: int, stop: int, rng: random.Random) -> None:
    """Training runs start..stop-1 on dataset versions of their own (every 5 runs), each with an eval run and an
    estimate, over the last two months; the first call also promotes an active model for the task."""
    base, _ = BaseModel.objects.get_or_create(
        name="gpt-4o-mini-2024-07-18",
        defaults={"training_price_per_1m": 3, "shutdown_date": datetime.date.today() + datetime.timedelta(days=90)},
    )
    now = timezone.now()
    for n in range(start, stop, 5):
        dataset = Dataset.objects.create(name=f"bench-{n}", task=task)
        gates = [{"name": "min_rows", "passed": n % 2 == 0, "value": 120, "threshold": 10, "message": "120 rows"}]
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=1,
            content_hash=f"{n:064x}",
            gates=gates,
            gates_passed=n % 2 == 0,
            counts={"train": 100, "validation": 20},
            export_status=rng.choice(["done", "done", "running"]),
        )
        runs = TrainingRun.objects.bulk_create(
            [
                TrainingRun(
                    dataset_version=version,
                    base_model=base,
                    provider=rng.choice(["openai", "together", "azure"]),
                    status=rng.choice(RUN_STATUSES),
                    budget_usd=Decimal("25.00"),
                    estimated_cost_usd=Decimal("18.40"),
                    actual_cost_usd=Decimal("17.95") if rng.random() < 0.7 else None,
                    launched_at=now - datetime.timedelta(days=rng.randrange(60)),
                    fine_tuned_model=f"ft:gpt-4o-mini-2024-07-18:shop::b{i}",
                )
                for i in range(n, min(n + 5, stop))
            ]
        )
        evals = EvalRun.objects.bulk_create(
            [
                EvalRun(
                    task=task,
                    model_name=run.fine_tuned_model,
                    model_kind="fine_tuned",
                    provider=run.provider,
                    dataset_version=version,
                    training_run=run,
                    prompt_kind="compact",
                    prompt_text="p",
                    status=rng.choice(["done", "done", "running"]),
                    total=20,
                    done_count=20,
                    cost_usd=Decimal("0.42"),
                    metrics={
                        "numeric": {
                            "operations[].machine_time_min_per_piece": {"mape": {"value": 0.12, "ci": [0.1, 0.14]}}
                        }
                    },
                )
                for run in runs
                if rng.random() < 0.8
            ]
        )
        Estimate.objects.bulk_create(
            [
                Estimate(
                    task=task,
                    drawing_id=Drawing.objects.order_by("pk").values_list("pk", flat=True).first(),
                    model_name=run.fine_tuned_model,
                    provider=f"{run.provider}_ft",
                    cost_usd=Decimal("0.003"),
                )
                for run in runs
            ]
        )
        if not ModelVersion.objects.filter(task=task, is_active=True).exists() and evals:
            ModelVersion.objects.create(
                task=task,
                model_name=evals[0].model_name,
                kind="fine_tuned",
                is_active=True,
                training_run=evals[0].training_run,
                eval_run=evals[0],
            )


def measure(client: Client, url: str, runs: int) -> tuple[float, int, float]:
    """(median wall ms over `runs` requests after one warm-up, queries of one request, median CPU ms)."""
    assert client.get(url).status_code == 200, url
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    # Count now: the captured list is a slice of the connection's log, which the next request clears.
    query_count = len(queries)
    times, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    # CPU time beside the wall time: on a shared machine the wall time also measures the neighbours.
    return statistics.median(times), query_count, statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="100,10000,100000", help="example counts, smallest first")
    parser.add_argument("--large", type=int, help="measure 100 and this many examples only")
    args = parser.parse_args()
    sizes = [100, args.large] if args.large else sorted(int(size) for size in args.sizes.split(","))

    tables_create()
    task = task_create_from_preset(slug="technology_builder")
    reviewers = Group.objects.get(name="Reviewer")
    users = []
    for name in ("rita", "rolf", "rosa"):
        user = User.objects.create_user(name, password="bench", is_staff=True)
        user.groups.add(reviewers)
        users.append(user)
    client = Client()
    client.force_login(users[0])
    manager = User.objects.create_user("mara", password="bench", is_staff=True)
    manager.groups.add(Group.objects.get(name="Manager"))
    manager_client = Client()
    manager_client.force_login(manager)
    rng = random.Random(42)

    results = {}
    built = 0
    for size in sizes:
        started = time.perf_counter()
        # In batches, so the 100,000 rows never sit in memory at once.
        for start in range(built, size, BUILD_BATCH):
            build(task=task, users=users, start=start, stop=min(size, start + BUILD_BATCH), rng=rng)
        build_runs(task=task, start=built // 100, stop=size // 100, rng=rng)
        built = size
        build_s = time.perf_counter() - started
        # A pending example in the middle, so previous, next and next-pending all exist.
        middle = Example.objects.filter(status="pending", pk__gte=size // 2).order_by("pk").first()
        urls = {
            "changelist": reverse("admin:curation_example_changelist"),
            "filtered": reverse("admin:curation_example_changelist")
            + "?status__exact=pending&tag_machine=NZX+2000&confidence=high&q=P-0",
            "review": reverse("admin:curation_example_review", args=[middle.pk]),
        }
        results[size] = {name: measure(client, url, args.runs) for name, url in urls.items()}
        results[size]["dashboard"] = measure(manager_client, reverse("admin:index"), args.runs)
        line = ", ".join(
            f"{name} {ms:.0f} ms (cpu {cpu_ms:.0f} ms, {queries} queries)"
            for name, (ms, queries, cpu_ms) in results[size].items()
        )
        print(
            f"  {size:,} examples (+{2 * size:,} history rows), {TrainingRun.objects.count():,} run(s) "
            f"(built in {build_s:.1f} s): {line}",
            flush=True,
        )

    largest = results[sizes[-1]]
    times_ok = all(largest[name][0] < goal for name, goal in GOALS_MS.items())
    flat = all(results[size][name][1] == results[sizes[0]][name][1] for size in sizes for name in GOALS_MS)
    times = ", ".join(f"{name} {largest[name][0]:.0f} ms (cpu {largest[name][2]:.0f})" for name in GOALS_MS)
    goals = ", ".join(f"< {goal}" for goal in GOALS_MS.values())
    queries = ", ".join(" → ".join(str(results[size][name][1]) for size in sizes) for name in GOALS_MS)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  load average {load:.1f} on {os.cpu_count()} cores; SQLite; median of {args.runs} runs after a warm-up")
    print(
        f"admin: {times} at {sizes[-1]:,} examples and {sizes[-1] // 100:,} runs (goals {goals} ms) "
        f"{'pass' if times_ok else 'FAIL'}; "
        f"queries {queries} ({'flat' if flat else 'GROWING'}) {'pass' if flat else 'FAIL'}"
    )
    return 0 if times_ok and flat else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        connection.close()
        shutil.rmtree(WORKDIR, ignore_errors=True)
