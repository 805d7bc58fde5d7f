"""Re-run the checks of a dataset version: `manage.py validate_dataset VERSION` (id or NAME:vN)."""
from django.core.management.base import BaseCommand, CommandError

from curation.management.commands._dataset_output import write_version_report
from curation.services.datasets import DatasetBuildError, dataset_version_resolve, dataset_version_validate


class Command(BaseCommand):
    help = "Re-run format checks, tokens and gates of a dataset version (id or NAME:vN); exit 1 when not ready."

    def add_arguments(self, parser):
        parser.add_argument("version", help="version id or NAME:vN")

    def handle(self, *args, **options):
        try:
            version = dataset_version_validate(version=dataset_version_resolve(ref=options["version"]))
        except DatasetBuildError as exc:
            raise CommandError(str(exc)) from exc
        write_version_report(self, version)
