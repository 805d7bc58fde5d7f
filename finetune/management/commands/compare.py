"""Paired comparison of two eval runs: `manage.py compare RUN_A RUN_B` (differences are B − A)."""

from django.core.management.base import BaseCommand, CommandError

from finetune.models import EvalRun
from finetune.services.comparison import ComparisonError, eval_runs_compare
from finetune.services.evals import eval_run_leak
from finetune.metrics import pct


class Command(BaseCommand):
    help = "Compare two finished eval runs on the examples both evaluated."

    def add_arguments(self, parser):
        parser.add_argument("run_a", type=int)
        parser.add_argument("run_b", type=int)

    def handle(self, *args, **opts):
        try:
            run_a, run_b = EvalRun.objects.get(pk=opts["run_a"]), EvalRun.objects.get(pk=opts["run_b"])
            c = eval_runs_compare(run_a=run_a, run_b=run_b)
        except EvalRun.DoesNotExist:
            raise CommandError("No such eval run.")
        except ComparisonError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"A = run {c['a']['id']} {c['a']['model']}   B = run {c['b']['id']} {c['b']['model']}")
        for name, run in (("A", run_a), ("B", run_b)):
            if leak := eval_run_leak(run):
                self.stdout.write(self.style.WARNING(f"⚠ {name} (run {run.pk}) {leak}"))
        self.stdout.write(
            f"{c['n_shared']} shared examples: B better on {c['b_wins']}, worse on {c['b_losses']}, ties {c['ties']}"
        )

        def row(name, a, b, diff, ci):
            interval = f"[{pct(ci[0])} .. {pct(ci[1])}]" if ci else ""
            self.stdout.write(f"  {name:<50} A {pct(a):>8}  B {pct(b):>8}  B-A {pct(diff):>8} {interval}")

        jv = c["json_validity"]
        row("JSON validity", jv["a"], jv["b"], jv["diff"], jv["ci"])
        for path, n in c["numeric"].items():
            row(f"MAPE {path}", n["mape_a"], n["mape_b"], n["diff"], n["ci"])
        for field, n in c["categorical"].items():
            row(f"exact match {field}", n["a"], n["b"], n["diff"], n["ci"])
