"""`manage.py import_production_times FILE.csv`: store production records, report invalid rows by line."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.services.production import ProductionCsvInvalid, production_records_import


class Command(BaseCommand):
    help = "Import production times (CSV); re-importing the same file changes nothing. Updates ground truth."

    def add_arguments(self, parser):
        parser.add_argument(
            "path",
            help="CSV file with part_number, order_id, machine, operation, pieces, "
            "machine_time_min_per_piece, setup_min[, recorded_at]",
        )

    def handle(self, *args, path, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            with file.open("rb") as handle:
                report = production_records_import(file=handle, source_name=file.name)
        except ProductionCsvInvalid as exc:
            raise CommandError(f"{file.name}: {exc}") from exc
        for row in report.invalid:
            self.stdout.write(f"  line {row['line']}: {row['reason']}")
        for part_number, lines in report.without_drawing.items():
            self.stdout.write(f"  {part_number}: no drawing yet (lines {', '.join(map(str, lines))}); stored")
        if report.unknown_machines:
            self.stdout.write(f"  machines not in the machine table: {', '.join(report.unknown_machines)}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{file.name}: {report.summary()}. Ground truth changed for {len(report.ground_truth_updated)} parts, "
                f"{report.examples_rebuilt} example targets rebuilt, {report.examples_flagged} reviewed examples "
                f"flagged "
                "(ground truth changed; their targets kept)."
            )
        )
