"""Score estimates against the ground truth that arrived since (the periodic job does the same every
ESTIMATE_SCORE_INTERVAL_SECONDS)."""

from django.core.management.base import BaseCommand

from finetune.services.estimate_scores import BATCH, estimates_score_stale


class Command(BaseCommand):
    help = (
        "Score every estimate whose part's ground truth arrived or changed since it was scored; clear scores "
        "whose ground truth is gone. Safe to run any time: a second run finds nothing to do."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=BATCH, help=f"estimates per transaction (default {BATCH})")
        parser.add_argument("--limit", type=int, default=None, help="score at most this many")

    def handle(self, *args, batch, limit, **options):
        report = estimates_score_stale(batch=batch, limit=limit)
        self.stdout.write(f"{report.scored} estimate(s) scored, {report.cleared} score(s) cleared (ground truth gone).")
