"""Create and launch a training run from the shell: the same rules as the admin's Launch button."""
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from curation.models import BaseModel
from curation.selectors import VERSION_REF_FORMS
from finetune.management.commands._evals_common import dataset_version
from finetune.services.runs import TrainingRunError, training_run_create, training_run_launch
from gestima.queues import QueueUnavailable


class Command(BaseCommand):
    help = ("Launch a fine-tuning run on a dataset version. Refused while gates fail or the estimate is over "
            "the budget, unless --override-reason is given (recorded on the run).")

    def add_arguments(self, parser):
        parser.add_argument("dataset_version", help=f"The dataset version: {VERSION_REF_FORMS}.")
        parser.add_argument("base_model", help="Base model name, e.g. gpt-4o-2024-08-06.")
        parser.add_argument("--provider", default="", help="openai, azure or dryrun (default: openai with a key, else dryrun).")
        parser.add_argument("--n-epochs", default="auto")
        parser.add_argument("--batch-size", default="auto")
        parser.add_argument("--learning-rate-multiplier", default="auto")
        parser.add_argument("--suffix", default="")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--budget", default=None, help="Budget in USD.")
        parser.add_argument("--override-reason", default="", help="Launch despite failing gates / over budget, with this reason.")
        parser.add_argument("--user", default="", help="Record this username as creator; it must hold finetune.launch_run.")

    def handle(self, *args, **options):
        version = dataset_version(options["dataset_version"])
        base_model = BaseModel.objects.filter(name=options["base_model"]).first()
        if base_model is None:
            names = ", ".join(BaseModel.objects.order_by("name").values_list("name", flat=True))
            raise CommandError(f"No base model {options['base_model']!r}: give one of {names or '(none: seed the base models)'}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            budget = Decimal(options["budget"]) if options["budget"] is not None else None
        except InvalidOperation:
            raise CommandError(f"--budget must be a number, not {options['budget']!r}")
        try:
            run = training_run_create(
                dataset_version=version, base_model=base_model, user=user, provider=options["provider"],
                n_epochs=options["n_epochs"], batch_size=options["batch_size"],
                learning_rate_multiplier=options["learning_rate_multiplier"], suffix=options["suffix"],
                seed=options["seed"], budget_usd=budget,
            )
            self.stdout.write(f"run {run.pk}: estimated {run.estimated_tokens} billed tokens, ${run.estimated_cost_usd:.4f}"
                              + (f" (budget ${run.budget_usd:.2f})" if run.budget_usd is not None else ""))
            run = training_run_launch(run=run, user=user, override_reason=options["override_reason"])
        except (TrainingRunError, PermissionDenied, QueueUnavailable) as exc:
            raise CommandError(str(exc))
        self.stdout.write(self.style.SUCCESS(f"run {run.pk} launched ({run.provider}): {run.status}"
                                             + (" [override recorded]" if run.override else "")))
