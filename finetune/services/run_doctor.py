"""Training runs beside the provider's jobs (`manage.py ft_doctor`): orphans, jobs gone, status mismatches."""

from __future__ import annotations

from finetune.models import TrainingRun
from finetune.providers.base import ProviderError, get_provider
from finetune.services.run_sync import run_job_adopt


def training_runs_doctor(*, provider_name: str | None = None, fix: bool = False) -> dict:
    """The provider's jobs beside our runs: orphans, runs whose job is gone, status mismatches.
    With `fix`, orphans carrying a run id of ours whose run has no job are adopted."""
    provider = get_provider(provider_name)
    report = {
        "provider": provider.name,
        "jobs": [],
        "orphans": [],
        "adopted": [],
        "duplicates": [],
        "gone": [],
        "mismatches": [],
    }
    if not provider.calls_api:
        return report
    jobs = provider.list_jobs()
    report["jobs"] = jobs
    runs = {r.job_id: r for r in TrainingRun.objects.filter(provider=provider.name, job_id__isnull=False)}
    for job in jobs:
        run = runs.get(job.id)
        if run is None:
            report["orphans"].append(job)
            owner = (
                TrainingRun.objects.filter(pk=job.run_id, provider=provider.name).first()
                if job.run_id.isdigit()
                else None
            )
            if owner is not None and owner.job_id:
                report["duplicates"].append((job, owner))
            elif fix and owner is not None:
                adopted = run_job_adopt(owner, job, provider, note="adopted by ft_doctor", reopen=True)
                report["adopted"].append((job, adopted))
        elif run.status != job.status:
            report["mismatches"].append((run, job))
    listed = {job.id for job in jobs}
    for job_id, run in runs.items():
        if job_id in listed:
            continue
        try:
            provider.retrieve_job(job_id)
        except ProviderError as exc:
            if getattr(exc, "http_status", None) == 404:
                report["gone"].append(run)
    return report
