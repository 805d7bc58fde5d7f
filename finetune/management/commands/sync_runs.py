"""Sync training runs with their remote jobs now (the periodic job does the same every RUN_SYNC_INTERVAL_SECONDS)."""

from django.core.management.base import BaseCommand

from finetune.models import TrainingRun
from finetune.services.run_sync import training_run_sync, training_runs_active, training_runs_sync_all


class Command(BaseCommand):
    help = "Sync every active training run (or the given run ids): status, events, metrics, checkpoints, cost."

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="*", type=int)

    def handle(self, *args, run_ids, **options):
        if run_ids:
            runs = [training_run_sync(run=run) for run in TrainingRun.objects.filter(pk__in=run_ids)]
        else:
            ids = list(training_runs_active().values_list("pk", flat=True))
            training_runs_sync_all()
            runs = list(TrainingRun.objects.filter(pk__in=ids))
        for run in runs:
            line = f"run {run.pk}: {run.status}"
            if run.job_id:
                line += f" job {run.job_id}"
            if run.fine_tuned_model:
                line += f" model {run.fine_tuned_model}"
            if run.error_code:
                line += f" error {run.error_code}: {run.error_message}"
            if run.sync_error:
                line += f" (provider problem: {run.sync_error})"
            self.stdout.write(line)
        self.stdout.write(f"{len(runs)} run(s) synced")
