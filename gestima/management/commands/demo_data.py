"""`manage.py demo_data [--reset-passwords]`: load the demo data (idempotent) and print the demo logins."""

from django.core.management.base import BaseCommand

from curation.demo.load import demo_data_load
from gestima.demo import demo_loop_load


class Command(BaseCommand):
    help = (
        "Reference tables, tasks, demo drawings (rendered at once), production records, ground truth, examples, "
        "a dataset that passes the gates, the admin/reviewer/manager logins and, with the simulated provider on, "
        "a simulated run evaluated and promoted. Running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Give the demo users new passwords (printed once, stored nowhere)",
        )

    def handle(self, *args, reset_passwords=False, **options):
        report = demo_data_load(reset_passwords=reset_passwords)
        demo_loop_load(report)  # with the simulated provider on: a run, its evaluations and a promoted model
        for line in report.lines:
            self.stdout.write(f"  {line}")
        self.stdout.write(self.style.SUCCESS("Demo logins (http://127.0.0.1:8000/admin/):"))
        for username, password, role in report.logins:
            if password:
                self.stdout.write(f"  {username} / {password}   ({role}; shown this once)")
            elif password == "":
                self.stdout.write(f"  {username}: password from DEMO_ADMIN_PASSWORD ({role})")
            else:
                self.stdout.write(
                    f"  {username}: exists, password unchanged ({role}; --reset-passwords sets a new one)"
                )
