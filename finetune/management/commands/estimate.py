"""Estimate a drawing with the task's active model: `manage.py estimate DRAWING` (id or part number)."""

import json

from django.core.management.base import BaseCommand, CommandError

from curation.models import Drawing, Task
from curation.task_presets import DRAWING_TASK_SLUG
from finetune.metrics import usd
from finetune.services.estimates import EstimateError, estimate_create
from finetune.management.commands._evals_common import user


class Command(BaseCommand):
    help = "Ask the active model of a task about one drawing and store the Estimate."

    def add_arguments(self, parser):
        parser.add_argument("drawing", help="drawing id or part number")
        parser.add_argument("--task", default=DRAWING_TASK_SLUG)
        parser.add_argument("--user", help="recorded as the requester (needs the add_estimate permission)")

    def handle(self, *args, **opts):
        value = opts["drawing"]
        drawing = (
            Drawing.objects.filter(pk=int(value)).first() if value.isdigit() else None
        ) or Drawing.objects.filter(part_number=value).order_by("-created_at").first()
        if drawing is None:
            raise CommandError(f"No drawing {value!r}.")
        task = Task.objects.filter(slug=opts["task"]).first()
        if task is None:
            raise CommandError(f"No task {opts['task']!r}.")
        try:
            estimate = estimate_create(drawing=drawing, task=task, user=user(opts["user"]))
        except EstimateError as exc:
            raise CommandError(str(exc))
        self.stdout.write(
            f"estimate {estimate.pk} by {estimate.model_name} ({estimate.provider}), "
            f"{estimate.latency_ms} ms, cost {usd(estimate.cost_usd)}"
        )
        if estimate.fallback_reason:
            self.stdout.write(f"answered by the task's fallback model: {estimate.fallback_reason}")
        if estimate.error:
            raise CommandError(f"{estimate.error_kind}: {estimate.error}")
        self.stdout.write(json.dumps(estimate.output, indent=2, ensure_ascii=False))
