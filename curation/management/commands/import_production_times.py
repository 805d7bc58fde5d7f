"""`manage.py import_production_times FILE.csv`: queue the import the admin's upload queues, follow it, then list
invalid rows by line. --sync imports in this process; --no-wait prints the import's id. Exit 0 imported (bad lines
are reported, good ones kept), 1 failed, 2 no such file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.services.production_imports import IMPORT, production_import_request, production_import_run
from gestima.work_commands import EXIT_BAD_ARGUMENTS, work_arguments_add, work_command_run


class Command(BaseCommand):
    help = (
        "Import production times (CSV) in a worker, following its progress; re-importing the same file changes "
        "nothing. Updates ground truth. --sync: import in this process; --no-wait: queue and print the import's id."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path",
            help="CSV file with part_number, order_id, machine, operation, pieces, "
            "machine_time_min_per_piece, setup_min[, recorded_at]",
        )
        work_arguments_add(parser)

    def handle(self, *args, path, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}", returncode=EXIT_BAD_ARGUMENTS)

        def request(queue):
            with file.open("rb") as handle:
                return production_import_request(file=handle, queue=queue)  # the row keeps the file's own name

        row = work_command_run(
            self,
            kind=IMPORT,
            label=lambda pk: f"Import #{pk} of {file.name}",
            request=request,
            run=lambda pk: production_import_run(import_id=pk),
            options=options,
        )
        if row is None:
            return
        report = row.report
        for line in report.get("invalid", []):
            self.stdout.write(f"  line {line['line']}: {line['reason']}")
        for part_number, lines in report.get("without_drawing", {}).items():
            self.stdout.write(f"  {part_number}: no drawing yet (lines {', '.join(map(str, lines))}); stored")
        if report.get("unknown_machines"):
            self.stdout.write(f"  machines not in the machine table: {', '.join(report['unknown_machines'])}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{file.name}: {row.summary}. Ground truth changed for {len(report.get('ground_truth_updated', []))} "
                f"parts, {report.get('examples_rebuilt', 0)} example targets rebuilt, "
                f"{report.get('examples_flagged', 0)} reviewed examples flagged "
                "(ground truth changed; their targets kept)."
            )
        )
