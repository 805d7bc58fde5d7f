"""`manage.py import_examples FILE.jsonl [--task SLUG] [--min-confidence 0.8]`: chat examples from other sources."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.models import Task
from curation.services.example_import import examples_import_jsonl


class Command(BaseCommand):
    help = "Import chat examples (OpenAI chat format, one per line) as pending examples; report defective lines."

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSONL file")
        parser.add_argument("--task", help='Task slug for every line (default: each line\'s "task" key)')
        parser.add_argument(
            "--min-confidence",
            type=float,
            default=None,
            help="Skip lines whose confidence is below this (0..1), or that have none",
        )

    def handle(self, *args, path, task=None, min_confidence=None, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}")
        chosen = None
        if task:
            chosen = Task.objects.filter(slug=task).first()
            if chosen is None:
                raise CommandError(f"No task {task!r}; create it in the admin or leave --task out.")
        if min_confidence is not None and not 0 <= min_confidence <= 1:
            raise CommandError("--min-confidence must be between 0 and 1.")
        with file.open("rb") as handle:
            report = examples_import_jsonl(
                file=handle, task=chosen, min_confidence=min_confidence, source_name=file.name
            )
        for defect in report.defects:
            self.stdout.write(f"  line {defect['line']}: {defect['reason']}")
        self.stdout.write(self.style.SUCCESS(f"{file.name}: {report.summary()}."))
