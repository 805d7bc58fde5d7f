"""Evaluate a model on a dataset version's split: `manage.py evaluate MODEL DATASET_VERSION [--kind ...]`,
a model behind an OpenAI-compatible endpoint: `manage.py evaluate --endpoint NAME DATASET_VERSION`,
or what a training run made: `manage.py evaluate --run N` (its base model and its fine-tuned model)."""

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from curation.selectors import VERSION_REF_FORMS
from finetune.metrics import usd
from finetune.models import ModelKind, TrainingRun
from finetune.providers.base import ProviderError
from finetune.selectors import eval_run_lineage, lineage_lines
from finetune.services.endpoints import EndpointError, endpoint_by_name
from finetune.services.eval_execute import eval_run_execute
from finetune.services.evals import EvalError, eval_run_create, eval_run_leak, training_run_evaluate
from finetune.management.commands._evals_common import dataset_version, metrics_lines, user
from gestima.queues import QueueUnavailable


class Command(BaseCommand):
    help = "Queue an eval run (or run it here with --foreground) and print its metrics."

    def add_arguments(self, parser):
        parser.add_argument("model", nargs="?", help="e.g. gpt-4o-2024-08-06 or ft:gpt-4o-2024-08-06:org::id")
        parser.add_argument("dataset_version", nargs="?", help=VERSION_REF_FORMS)
        parser.add_argument(
            "--run",
            type=int,
            help="a succeeded training run: evaluate its base model and its "
            "fine-tuned model on its dataset version's validation split",
        )
        parser.add_argument("--split", default="validation")
        parser.add_argument("--kind", default=ModelKind.BASE, choices=ModelKind.values)
        parser.add_argument(
            "--provider",
            default="",
            help="default: the provider that serves the model (a fine-tuned model of one of our runs: "
            "that run's provider; else openai with OPENAI_API_KEY, else azure when configured, "
            "else dryrun)",
        )
        parser.add_argument(
            "--deployment",
            default="",
            help="Azure: the deployment to call (default: the run's recorded deployment; a base model's "
            "deployment named after it)",
        )
        parser.add_argument(
            "--endpoint",
            help="a model endpoint's name (admin: Model endpoints): ask that "
            "OpenAI-compatible server; MODEL may then be left out",
        )
        parser.add_argument(
            "--k", type=int, default=None, help="few-shot kind: worked examples per question (default FEW_SHOT_K)"
        )
        parser.add_argument("--concurrency", type=int, default=None)
        parser.add_argument("--user", help="recorded as the creator (needs the run_eval permission)")
        parser.add_argument(
            "--foreground",
            action="store_true",
            help="run the evaluation in this process instead of waiting for a worker",
        )

    def handle(self, *args, **opts):
        if opts["run"] is not None:
            if opts["model"] or opts["dataset_version"]:
                raise CommandError("Give either --run N or MODEL DATASET_VERSION, not both.")
            runs = self._for_training_run(opts)
        elif opts["endpoint"] or (opts["model"] and opts["dataset_version"]):
            if opts["endpoint"] and not opts["dataset_version"]:
                opts["model"], opts["dataset_version"] = "", opts["model"]  # `--endpoint NAME DATASET_VERSION`
            if not opts["dataset_version"]:
                raise CommandError("Give the DATASET_VERSION to evaluate on.")
            version = dataset_version(opts["dataset_version"])
            try:
                endpoint = endpoint_by_name(opts["endpoint"]) if opts["endpoint"] else None
                runs = [
                    eval_run_create(
                        task=version.dataset.task,
                        model_name=opts["model"] or "",
                        model_kind=opts["kind"],
                        provider=opts["provider"],
                        dataset_version=version,
                        split=opts["split"],
                        user=user(opts["user"]),
                        concurrency=opts["concurrency"],
                        deployment_name=opts["deployment"],
                        endpoint=endpoint,
                        few_shot_k=opts["k"],
                    )
                ]
            except (EvalError, EndpointError, QueueUnavailable, ProviderError) as exc:
                raise CommandError(str(exc))
        else:
            raise CommandError("Give MODEL DATASET_VERSION, or --run N for a training run.")
        for run in runs:
            self._report(run, opts)

    def _for_training_run(self, opts):
        training_run = TrainingRun.objects.filter(pk=opts["run"]).first()
        if training_run is None:
            raise CommandError(f"No training run {opts['run']}.")
        try:
            runs, created = training_run_evaluate(
                run=training_run, user=user(opts["user"]), concurrency=opts["concurrency"]
            )
        except (EvalError, QueueUnavailable, ProviderError, PermissionDenied) as exc:
            raise CommandError(str(exc) or "Permission denied.")
        if not created:
            self.stdout.write(f"training run {training_run.pk} was already evaluated (nothing new queued)")
        return runs

    def _report(self, run, opts):
        through = f" through deployment {run.deployment_name}" if run.deployment_name else ""
        self.stdout.write(
            f"eval run {run.pk}: {run.model_name} ({run.model_kind}) on {run.provider}{through}, "
            f"{run.total} examples, "
            f"prompt {run.prompt_kind}, concurrency {run.concurrency}"
        )
        if run.endpoint_id:
            self.stdout.write(f"  endpoint: {run.endpoint.name} at {run.endpoint.base_url}")
        if run.few_shot:
            self.stdout.write(
                f"  few-shot: k={run.few_shot['k']} ({run.few_shot['rule']}: {run.few_shot['rule_text']})"
            )
        for label, text in lineage_lines(eval_run_lineage(run)):
            self.stdout.write(f"  {label}: {text}")
        leak = eval_run_leak(run)
        if leak:
            self.stdout.write(self.style.WARNING(f"  ⚠ {leak}"))
        if not opts["foreground"]:
            self.stdout.write("  queued on the 'openai' queue; see the admin for progress.")
            return
        # The job claims the run too: whichever of this process and a worker claims first runs it.
        run = eval_run_execute(eval_run=run)
        self.stdout.write(
            f"status {run.status}, {run.done_count} ok, {run.error_count} with errors, cost {usd(run.cost_usd)}"
        )
        if run.error:
            self.stdout.write(self.style.ERROR(f"  {run.error}"))
        for line in metrics_lines(run.metrics or {}):
            self.stdout.write("  " + line)
