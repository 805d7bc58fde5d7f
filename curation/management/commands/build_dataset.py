"""Build a dataset version: `manage.py build_dataset DATASET` (name or id) queues the build the admin's action
queues, follows it, then prints gates, tokens and cost. --sync builds in this process; --no-wait prints the build's
id. Exit 0 built, 1 failed, 2 no such dataset."""

from django.core.management.base import BaseCommand, CommandError

from curation.management.commands._dataset_output import write_version_report
from curation.services.dataset_builds import BUILD, dataset_build_request, dataset_build_run, dataset_build_summary
from curation.services.datasets import DatasetBuildError, dataset_resolve
from gestima.work_commands import EXIT_BAD_ARGUMENTS, work_arguments_add, work_command_run


class Command(BaseCommand):
    help = (
        "Build a frozen version of a dataset (name or id) in a worker, following its progress, and print its gates, "
        "tokens and cost. --sync: build in this process; --no-wait: queue and print the build's id."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="dataset name or id")
        work_arguments_add(parser)

    def handle(self, *args, **options):
        try:
            dataset = dataset_resolve(ref=options["dataset"])
        except DatasetBuildError as exc:
            raise CommandError(str(exc), returncode=EXIT_BAD_ARGUMENTS) from exc
        build = work_command_run(
            self,
            kind=BUILD,
            label=lambda pk: f"Build #{pk} of {dataset.name}",
            request=lambda queue: dataset_build_request(dataset=dataset, queue=queue),
            run=lambda pk: dataset_build_run(build_id=pk),
            options=options,
        )
        if build is not None:
            self.stdout.write(dataset_build_summary(build))
            write_version_report(self, build.version)
