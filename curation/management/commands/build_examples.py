"""`manage.py build_examples [--task SLUG]`: pending examples from rendered drawings + ground truth."""

from django.core.management.base import BaseCommand, CommandError

from curation.services.examples import examples_build
from curation.services.tasks import UnknownPreset, task_get_or_create
from curation.task_presets import DRAWING_TASK_SLUG


class Command(BaseCommand):
    help = "Build (idempotently) one example per rendered drawing with ground truth; lists skipped drawings."

    def add_arguments(self, parser):
        parser.add_argument("--task", default=DRAWING_TASK_SLUG, help=f"Task slug (default {DRAWING_TASK_SLUG})")

    def handle(self, *args, task, **options):
        try:
            chosen = task_get_or_create(slug=task)
        except UnknownPreset as exc:
            raise CommandError(str(exc)) from exc
        if not chosen.uses_images:
            raise CommandError(f"Task {chosen.slug} does not use drawings; import its examples with import_examples.")
        report = examples_build(task=chosen)
        for skipped in report.skipped:
            self.stdout.write(f"  {skipped['part_number'] or '#' + str(skipped['drawing_id'])}: {skipped['reason']}")
        self.stdout.write(self.style.SUCCESS(f"{chosen.slug}: {report.summary()}."))
