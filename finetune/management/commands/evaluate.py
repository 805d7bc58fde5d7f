"""Evaluate a model on a dataset version's split: `manage.py evaluate MODEL DATASET_VERSION [--kind ...]`."""
from django.core.management.base import BaseCommand, CommandError

from curation.selectors import VERSION_REF_FORMS
from finetune.models import ModelKind
from finetune.providers.base import ProviderError
from finetune.services.evals import EvalError, eval_run_create, eval_run_execute
from finetune.management.commands._evals_common import dataset_version, metrics_lines, user
from gestima.queues import QueueUnavailable


class Command(BaseCommand):
    help = "Queue an eval run (or run it here with --foreground) and print its metrics."

    def add_arguments(self, parser):
        parser.add_argument("model", help="e.g. gpt-4o-2024-08-06 or ft:gpt-4o-2024-08-06:org::id")
        parser.add_argument("dataset_version", help=VERSION_REF_FORMS)
        parser.add_argument("--split", default="validation")
        parser.add_argument("--kind", default=ModelKind.BASE, choices=ModelKind.values)
        parser.add_argument("--provider", default="openai")
        parser.add_argument("--concurrency", type=int, default=None)
        parser.add_argument("--user", help="recorded as the creator (needs the run_eval permission)")
        parser.add_argument("--foreground", action="store_true",
                            help="run the evaluation in this process instead of waiting for a worker")

    def handle(self, *args, **opts):
        version = dataset_version(opts["dataset_version"])
        try:
            run = eval_run_create(task=version.dataset.task, model_name=opts["model"], model_kind=opts["kind"],
                                  provider=opts["provider"], dataset_version=version, split=opts["split"],
                                  user=user(opts["user"]), concurrency=opts["concurrency"])
        except (EvalError, QueueUnavailable, ProviderError) as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"eval run {run.pk}: {run.total} examples, prompt {run.prompt_kind}, concurrency {run.concurrency}")
        if not opts["foreground"]:
            self.stdout.write("queued on the 'openai' queue; see the admin for progress.")
            return
        # The job claims the run too: whichever of this process and a worker claims first runs it.
        run = eval_run_execute(eval_run=run)
        self.stdout.write(f"status {run.status}, {run.done_count} ok, {run.error_count} with errors, cost ${run.cost_usd}")
        for line in metrics_lines(run.metrics or {}):
            self.stdout.write("  " + line)
