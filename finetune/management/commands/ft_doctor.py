"""Compare the provider's fine-tuning jobs with our runs: orphans, vanished jobs, status mismatches."""

from django.core.management.base import BaseCommand, CommandError

from finetune.providers.base import ProviderError
from finetune.services.run_doctor import training_runs_doctor


class Command(BaseCommand):
    help = (
        "List the provider's jobs beside the runs; report orphans (jobs no run knows), runs whose job is gone "
        "and status mismatches, and exit 1 when there is any. --fix adopts orphans carrying our run id whose run "
        "has no job yet."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", default=None, help="openai, azure or together (default: the configured one).")
        parser.add_argument("--fix", action="store_true")

    def handle(self, *args, provider, fix, **options):
        try:
            report = training_runs_doctor(provider_name=provider, fix=fix)
        except ProviderError as exc:
            raise CommandError(f"{exc.code}: {exc.message}")
        out = self.stdout.write
        out(f"provider {report['provider']}: {len(report['jobs'])} remote job(s)")
        for job in report["jobs"]:
            out(f"  {job.id}  {job.status:<16} {job.model}  run={job.run_id or '-'}")
        adopted = {job.id for job, _ in report["adopted"]}
        for job in report["orphans"]:
            if job.id in adopted:
                continue
            duplicate = next((run for dup, run in report["duplicates"] if dup.id == job.id), None)
            if duplicate is not None:
                hint = f"a second job for run {duplicate.pk}, which has {duplicate.job_id}: cancel one"
            elif job.run_id:
                hint = f"carries run id {job.run_id}" + ("" if fix else " (--fix adopts it)")
            else:
                hint = "no run id in its metadata (not ours, or made by hand)"
            out(self.style.WARNING(f"ORPHAN {job.id} ({job.status}): {hint}"))
        for job, run in report["adopted"]:
            out(self.style.SUCCESS(f"ADOPTED {job.id} into run {run.pk} ({run.status})"))
        for run in report["gone"]:
            out(self.style.ERROR(f"GONE run {run.pk}: its job {run.job_id} is no longer at the provider"))
        for run, job in report["mismatches"]:
            out(
                self.style.WARNING(
                    f"MISMATCH run {run.pk}: ours {run.status}, provider {job.status} "
                    f"(sync_runs {run.pk} brings it up to date)"
                )
            )
        problems = len(report["orphans"]) - len(adopted) + len(report["gone"]) + len(report["mismatches"])
        if problems:
            # Exit 1, so a cron job or a script notices; the report above says what each problem is.
            raise CommandError(
                f"{problems} problem(s)"
                + ("" if fix or not report["orphans"] else "; --fix adopts orphans that carry our run id")
            )
        out(self.style.SUCCESS("no problems"))
