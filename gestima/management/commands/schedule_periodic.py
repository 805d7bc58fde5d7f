"""Install the periodic jobs (drawing reconciler, run sync); run at worker start-up."""

from django.core.management.base import BaseCommand

from gestima.periodic import periodic_install_all


class Command(BaseCommand):
    help = "Schedule the periodic jobs (reconcile drawings, sync training runs) on the worker's scheduler."

    def add_arguments(self, parser):
        parser.add_argument("--delay", type=int, default=0, help="Seconds before the first run.")

    def handle(self, *args, delay, **options):
        names = periodic_install_all(delay=delay)
        self.stdout.write(f"scheduled: {', '.join(names)}")
