"""Re-run the checks of a dataset version: `manage.py validate_dataset VERSION` (NAME:vN, NAME@N or id).

Exits 1 (CommandError) when the version is not ready, so scripts and CI can stop on it.
"""

from django.core.management.base import BaseCommand, CommandError

from curation.management.commands._dataset_output import write_version_report
from curation.selectors import VERSION_REF_FORMS, DatasetVersionNotFound, dataset_version_by_ref
from curation.services.datasets import DatasetBuildError, dataset_version_validate


class Command(BaseCommand):
    help = f"Re-run format checks, tokens and gates of a dataset version ({VERSION_REF_FORMS}); exit 1 when not ready."

    def add_arguments(self, parser):
        parser.add_argument("version", help=VERSION_REF_FORMS)

    def handle(self, *args, **options):
        try:
            version = dataset_version_validate(version=dataset_version_by_ref(ref=options["version"]))
        except (DatasetVersionNotFound, DatasetBuildError) as exc:
            raise CommandError(str(exc)) from exc
        write_version_report(self, version)
        if not version.gates_passed:
            failed = [gate["name"] for gate in version.gates if not gate["passed"]]
            errors = sum(1 for p in version.problems if p.get("level", "error") == "error")
            raise CommandError(
                f"{version.dataset.name}:v{version.number} is NOT ready: "
                f"failed gate(s) {', '.join(failed) or 'none'}, {errors} format error(s)."
            )
