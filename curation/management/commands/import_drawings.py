"""`manage.py import_drawings PATH... [--sync]`: ingest PDF files or folders, print new / existing / rejected."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.models import Drawing
from curation.rendering import text_storable
from curation.services.drawing_uploads import drawings_ingest_many
from curation.services.drawings import drawing_render


class Command(BaseCommand):
    help = (
        "Store PDF drawings (files, or folders searched recursively for *.pdf), once per content, and queue "
        "their renders. Prints a summary of new, existing and rejected files with the reasons."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="PDF files or folders")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Render here, one after the other, instead of queueing (no Redis or worker needed)",
        )

    def handle(self, *args, paths, sync=False, **options):
        files = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".pdf"))
            elif path.is_file():
                files.append(path)  # named explicitly: checked whatever its extension
            else:
                raise CommandError(f"{raw}: no such file or folder")
        if not files:
            raise CommandError("no PDF files found")

        outcomes, queue_error = drawings_ingest_many(files=[(p.name, p) for p in files], enqueue=not sync)
        for path, outcome in zip(files, outcomes):
            # A path from the disk may hold bytes that are not UTF-8: printed escaped, never a crash.
            shown = text_storable(str(path))
            if outcome.verdict == "rejected":
                self.stdout.write(f"rejected  {shown}: {outcome.reason}")
                continue
            drawing = outcome.drawing
            if sync and drawing.status == Drawing.Status.UPLOADED:
                # One drawing at a time, each line printed as it is done; drawing_render fails a drawing
                # on any error instead of raising, so one bad file never stops the batch.
                drawing = drawing_render(drawing=drawing)
            drawing.refresh_from_db()
            detail = drawing.status + (f": {drawing.error}" if drawing.error else "")
            if drawing.page_problems:
                detail += f"; {drawing.page_problems}"
            self.stdout.write(f"{outcome.verdict:<9} {shown} -> #{drawing.pk} {drawing.part_number} ({detail})")
        counts = {v: sum(o.verdict == v for o in outcomes) for v in ("new", "existing", "rejected")}
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(outcomes)} files: {counts['new']} new, {counts['existing']} existing, {counts['rejected']} "
                f"rejected"
            )
        )
        if queue_error:
            self.stderr.write(
                self.style.WARNING(
                    f"{queue_error} The new drawings are saved (status uploaded) and render once a worker runs; "
                    "or run again with --sync."
                )
            )
