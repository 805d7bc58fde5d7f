"""Build a dataset version: `manage.py build_dataset DATASET` (name or id); prints gates, tokens and cost."""

from django.core.management.base import BaseCommand, CommandError

from curation.management.commands._dataset_output import write_version_report
from curation.services.datasets import DatasetBuildError, dataset_build, dataset_resolve


class Command(BaseCommand):
    help = "Build a frozen version of a dataset (name or id) and print its gates, tokens and cost."

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name or id")

    def handle(self, *args, **options):
        try:
            version = dataset_build(dataset=dataset_resolve(ref=options["dataset"]))
        except DatasetBuildError as exc:
            raise CommandError(str(exc)) from exc
        write_version_report(self, version)
