"""Export a dataset version: `manage.py export_dataset VERSION --out DIR [--format openai|open_weights]`."""

from django.core.management.base import BaseCommand, CommandError

from curation.selectors import VERSION_REF_FORMS, DatasetVersionNotFound, dataset_version_by_ref
from curation.services.exports import FORMATS, ExportError, dataset_version_export


class Command(BaseCommand):
    help = f"Write train.jsonl, validation.jsonl and manifest.json of a dataset version ({VERSION_REF_FORMS}) into DIR."

    def add_arguments(self, parser):
        parser.add_argument("version", help=VERSION_REF_FORMS)
        parser.add_argument("--out", required=True, help="output directory (created if missing)")
        parser.add_argument("--format", default="openai", choices=FORMATS)

    def handle(self, *args, **options):
        try:
            version = dataset_version_by_ref(ref=options["version"])
            paths = dataset_version_export(
                version=version, out_dir=options["out"], fmt=options["format"], progress=self._progress
            )
        except (DatasetVersionNotFound, ExportError) as exc:
            raise CommandError(str(exc)) from exc
        for name, path in paths.items():
            self.stdout.write(f"{name}: {path if path else '(no rows)'}")

    def _progress(self, done, total):
        if done == total or done % 200 == 0:
            self.stderr.write(f"\r{done}/{total} lines", ending="")
            if done == total:
                self.stderr.write("")
