"""Promote an evaluated model to its task's active one: `manage.py promote EVAL_RUN --user NAME [--override-reason
...]`."""

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from finetune.models import EvalRun
from finetune.services.promotion import PromotionRefused, model_version_promote
from finetune.management.commands._evals_common import user


class Command(BaseCommand):
    help = "Apply the task's promotion policy and make the model active (override only with a recorded reason)."

    def add_arguments(self, parser):
        parser.add_argument("eval_run", type=int)
        parser.add_argument("--user", required=True, help="a Manager: promotion is recorded under this user")
        parser.add_argument("--override-reason", default="", help="promote although the policy fails (recorded)")

    def handle(self, *args, **opts):
        run = EvalRun.objects.filter(pk=opts["eval_run"]).first()
        if run is None:
            raise CommandError(f"No eval run {opts['eval_run']}.")
        try:
            version = model_version_promote(
                eval_run=run, user=user(opts["user"], required=True), override_reason=opts["override_reason"]
            )
        except PromotionRefused as exc:
            for check in exc.checks:
                self.stderr.write(f"  {'PASS' if check['passed'] else 'FAIL'} {check['name']}: {check['message']}")
            raise CommandError(str(exc))
        except PermissionDenied as exc:
            raise CommandError(str(exc) or "Permission denied.")
        for check in version.report["checks"]:
            self.stdout.write(f"  {'PASS' if check['passed'] else 'FAIL'} {check['name']}: {check['message']}")
        self.stdout.write(
            f"model version {version.pk}: {version.model_name} is the active model of {version.task.slug}"
            + ("" if version.policy_passed else " (policy overridden)")
        )
