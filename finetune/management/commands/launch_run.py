"""Create and launch a training run from the shell: the same rules as the admin's Launch button."""

from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from curation.models import BaseModel
from curation.provider_names import ProviderName
from curation.selectors import VERSION_REF_FORMS
from finetune.management.commands._evals_common import dataset_version
from finetune.services.run_launch import training_run_create, training_run_launch
from finetune.services.run_state import TrainingRunError
from gestima.queues import QueueUnavailable


class Command(BaseCommand):
    help = (
        "Launch a fine-tuning run on a dataset version. Refused while gates fail or the estimate is over "
        "the budget, unless --override-reason is given (recorded on the run), and while an identical run is "
        "active or succeeded, unless --allow-duplicate is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset_version", help=f"The dataset version: {VERSION_REF_FORMS}.")
        parser.add_argument("base_model", help="Base model name, e.g. gpt-4o-2024-08-06.")
        trainers = [
            p.value for p in (ProviderName.OPENAI, ProviderName.AZURE, ProviderName.TOGETHER, ProviderName.DRYRUN)
        ]
        parser.add_argument(
            "--provider",
            default="",
            choices=["", *trainers],
            help=f"{', '.join(trainers)} (default: {trainers[0]} with a key, then {trainers[1]}, "
            f"then {trainers[2]}, else {trainers[3]}).",
        )
        parser.add_argument(
            "--training-type",
            choices=["lora", "full"],
            default=None,
            help="Together only: LoRA (the default) or full fine-tuning.",
        )
        parser.add_argument(
            "--n-checkpoints", type=int, default=None, help="Together only: checkpoints to keep (default 1)."
        )
        parser.add_argument("--n-epochs", default="auto")
        parser.add_argument("--batch-size", default="auto")
        parser.add_argument("--learning-rate-multiplier", default="auto")
        parser.add_argument("--suffix", default="")
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--budget", default=None, help="Budget in USD.")
        parser.add_argument(
            "--override-reason", default="", help="Launch despite failing gates / over budget, with this reason."
        )
        parser.add_argument(
            "--allow-duplicate",
            action="store_true",
            help="Launch although a run with the same dataset version, model and hyperparameters is "
            "active or succeeded (a second paid job).",
        )
        parser.add_argument(
            "--duplicate-reason", default="", help="Why the duplicate is wanted (recorded on the run's timeline)."
        )
        parser.add_argument(
            "--user", default="", help="Record this username as creator; it must hold finetune.launch_run."
        )

    def handle(self, *args, **options):
        version = dataset_version(options["dataset_version"])
        base_model = BaseModel.objects.filter(name=options["base_model"]).first()
        if base_model is None:
            names = ", ".join(BaseModel.objects.order_by("name").values_list("name", flat=True))
            raise CommandError(
                f"No base model {options['base_model']!r}: give one of {names or '(none: seed the base models)'}."
            )
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
                dataset_version=version,
                base_model=base_model,
                user=user,
                provider=options["provider"],
                n_epochs=options["n_epochs"],
                batch_size=options["batch_size"],
                learning_rate_multiplier=options["learning_rate_multiplier"],
                suffix=options["suffix"],
                seed=options["seed"],
                budget_usd=budget,
                provider_options={k: options[k] for k in ("training_type", "n_checkpoints") if options[k] is not None},
            )
            cost = (
                f"${run.estimated_cost_usd:.4f}"
                if run.estimated_cost_usd is not None
                else "cost unknown (no training price)"
            )
            self.stdout.write(
                f"run {run.pk}: estimated {run.estimated_tokens} billed tokens, {cost}"
                + (f" (budget ${run.budget_usd:.2f})" if run.budget_usd is not None else "")
            )
            duplicate_reason = options["duplicate_reason"] or (
                "confirmed with launch_run --allow-duplicate" if options["allow_duplicate"] else ""
            )
            run = training_run_launch(
                run=run,
                user=user,
                override_reason=options["override_reason"],
                allow_duplicate=options["allow_duplicate"],
                duplicate_reason=duplicate_reason,
            )
        except (TrainingRunError, PermissionDenied, QueueUnavailable) as exc:
            raise CommandError(str(exc))
        self.stdout.write(
            self.style.SUCCESS(
                f"run {run.pk} launched ({run.provider}): {run.status}"
                + (" [override recorded]" if run.override else "")
            )
        )
        note = (run.timeline or [{}])[-1].get("note", "")
        if "duplicate" in note:
            self.stdout.write(self.style.WARNING(note))
