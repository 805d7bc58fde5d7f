"""Benchmark: an eval run of N examples against the stand-in answering each call after 200 ms.

Ideal wall time = N / concurrency × 0.2 s (the pool is never idle and nothing else costs time). The
measured time is the whole job body (`eval_run_execute`): claim, building messages with base64 page
images, the API calls through the real `openai` SDK over HTTP, storing every result, and the metrics
with their bootstrap intervals. Goal: within 1.3× of ideal. Throwaway SQLite database and media root.

    .venv/bin/python benchmarks/eval.py [--examples 200] [--concurrency 8] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _django import django_throwaway  # noqa: E402

WORKDIR = django_throwaway("eval", OPENAI_API_KEY="bench-key")

from django.apps import apps  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

GOAL = 1.3


def serve(targets: dict, delay: float, pipe) -> None:
    """The stand-in in its own process, like the real API: its CPU time is not the evaluation's."""
    from tests.openai_standin import StandIn
    from tests.openai_standin.chat import Reply, install_chat, part_number

    with StandIn() as api:
        install_chat(api, lambda body: Reply(text=json.dumps(targets[part_number(body)]), delay=delay))
        pipe.send(api.base_url)
        pipe.recv()  # until the benchmark is done
        pipe.send(len(api.calls_to("POST", "/chat/completions")))


def build(n: int):
    from curation.models import DatasetMember, Example
    from tests.factories import make_drawing, make_example, make_task, technology_target
    from curation.models import Dataset, DatasetVersion

    settings.MIGRATION_MODULES = {app.label: None for app in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0)
    task = make_task()
    dataset = Dataset.objects.create(name="bench", task=task)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, content_hash="bench")
    targets = {}
    for i in range(n):
        drawing = make_drawing(part_number=f"B-{i:05d}")
        target = technology_target(drawing.part_number, minutes=5 + i % 20)
        example = make_example(task=task, drawing=drawing, target=target, status=Example.Status.APPROVED)
        DatasetMember.objects.create(
            version=version,
            example=example,
            split="validation",
            position=i,
            messages=example.messages,
            target=example.target,
        )
        targets[drawing.part_number] = target
    return task, version, targets


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=settings.EVAL_CONCURRENCY)
    parser.add_argument("--delay", type=float, default=0.2)
    args = parser.parse_args()

    from finetune.models import EvalRun
    from finetune.services.eval_execute import eval_run_execute
    from finetune.services.evals import eval_prompt

    server = None
    try:
        task, version, targets = build(args.examples)
        connections.close_all()  # the forked server must not share the SQLite connection
        ours, theirs = multiprocessing.Pipe()
        server = multiprocessing.get_context("fork").Process(
            target=serve, args=(targets, args.delay, theirs), daemon=True
        )
        server.start()
        settings.OPENAI_BASE_URL = ours.recv()
        prompt_kind, prompt_text = eval_prompt(task=task, model_kind="base")
        # The row eval_run_create makes, without needing Redis: the benchmark times the job body.
        run = EvalRun.objects.create(
            task=task,
            model_name="gpt-4o-2024-08-06",
            model_kind="base",
            provider="openai",
            dataset_version=version,
            prompt_kind=prompt_kind,
            prompt_text=prompt_text,
            total=args.examples,
            concurrency=args.concurrency,
        )
        # Import the SDK's modules once, as a worker process does on its first job (cold: ~1 s, printed
        # below); the timed run still builds its own client.
        from finetune.providers.base import get_provider

        cold = time.perf_counter()
        get_provider("openai").chat_prepare()
        cold = time.perf_counter() - cold
        started = time.perf_counter()
        run = eval_run_execute(eval_run=run)
        wall = time.perf_counter() - started
        ours.send("done")
        calls = ours.recv()
        # How much of the wall time the metrics take (computed again the same way, results are frozen).
        from finetune import metrics as metric_lib
        from finetune.services.eval_results import eval_run_records

        metrics_started = time.perf_counter()
        metric_lib.run_metrics(eval_run_records(run), task.metric_spec, n_boot=settings.EVAL_BOOTSTRAP_SAMPLES)
        metrics_s = time.perf_counter() - metrics_started
        ideal = args.examples / args.concurrency * args.delay
        ratio = wall / ideal
        ok = run.status == "done" and run.done_count == args.examples and calls == args.examples
        print(
            f"examples {args.examples}, concurrency {args.concurrency}, stand-in delay {args.delay * 1000:.0f} ms, "
            f"calls {calls}, results ok {run.done_count}, errors {run.error_count}"
        )
        print(
            f"wall {wall:.2f} s, ideal {ideal:.2f} s; of which metrics + bootstrap ~{metrics_s:.2f} s "
            f"(asking alone: {(wall - metrics_s) / ideal:.2f}x)"
        )
        print(f"SDK import + first client before timing {cold:.2f} s (cold process: {(wall + cold) / ideal:.2f}x)")
        passed = ok and ratio <= GOAL
        print(
            f"eval: {ratio:.2f}x ideal (goal <= {GOAL}x) {'pass' if passed else 'FAIL'}, {args.examples} examples, "
            f"concurrency {args.concurrency}, {wall:.1f} s"
        )
        return 0 if passed else 1
    finally:
        if server is not None and server.is_alive():
            server.terminate()
        shutil.rmtree(WORKDIR, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
