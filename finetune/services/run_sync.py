"""Training runs, step 3: follow each remote job: status moves, events (once each), metrics, checkpoints,
the model, trained tokens and cost; adopt a job a worker made but never saved; restart a run left without one.

One periodic job (`training_runs_sync_all`) syncs every active run; see run_start.py for why this makes
exactly one remote job per run.
"""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from curation.provider_names import ProviderName
from finetune.models import RunCheckpoint, RunEvent, RunMetric, TrainingRun
from finetune.providers.base import ProviderError, get_provider
from finetune.providers.fine_tuning import RemoteEvent, RemoteJob, provider_refusals, result_csv_rows
from finetune.services.run_launch import training_run_enqueue_start
from finetune.services.run_state import run_status_set

logger = logging.getLogger(__name__)

S = TrainingRun.Status

# Remote metric names -> RunMetric fields (events use the long names, the result CSV the short ones).
_METRIC_FIELDS = {
    "train_loss": "train_loss",
    "train_mean_token_accuracy": "train_accuracy",
    "train_accuracy": "train_accuracy",
    "valid_loss": "valid_loss",
    "valid_mean_token_accuracy": "valid_accuracy",
    "valid_accuracy": "valid_accuracy",
    "full_valid_loss": "full_valid_loss",
    "full_valid_mean_token_accuracy": "full_valid_accuracy",
}


def _ts(value: int | None):
    return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc) if value else None


def run_job_apply(run: TrainingRun, job: RemoteJob, *, note: str = "", reopen: bool = False) -> TrainingRun:
    """Store what the provider says of the run's job (status through run_status_set, so only forward)."""
    fields = {}
    # Merged, not replaced: a stale answer (taken before "auto" was resolved) never loses resolved values.
    resolved = {**(run.resolved_hyperparameters or {}), **job.hyperparameters}
    if resolved != (run.resolved_hyperparameters or {}):
        fields["resolved_hyperparameters"] = resolved
    if job.estimated_finish:
        fields["estimated_finish_at"] = _ts(job.estimated_finish)
    if not job.error_code and job.status != S.FAILED and (run.error_code or run.error_message or run.error_param):
        # The run moved on: an error from an earlier attempt (a stopped worker, a failed start) no longer holds.
        fields.update(error_code="", error_message="", error_param="")
    attached = {job.training_file, job.validation_file} - {""}
    if run.orphaned_files and attached:
        kept = [entry for entry in run.orphaned_files if entry.get("file_id") not in attached]
        if kept != run.orphaned_files:
            fields["orphaned_files"] = kept
    if job.fine_tuned_model and job.fine_tuned_model != run.fine_tuned_model:
        fields["fine_tuned_model"] = job.fine_tuned_model
    if job.trained_tokens is not None:
        fields["trained_tokens"] = job.trained_tokens
        if run.base_model.training_price_per_1m is not None:  # unknown price: the cost stays unknown
            fields["actual_cost_usd"] = (
                Decimal(job.trained_tokens) * run.base_model.training_price_per_1m / Decimal(1_000_000)
            ).quantize(Decimal("0.0001"))
    if job.error_code:
        fields.update(error_code=job.error_code, error_message=job.error_message, error_param=job.error_param or "")
    if job.result_files and not run.result_file_id:
        fields["result_file_id"] = job.result_files[0]
    if job.status in S.TERMINAL and job.finished_at:
        fields["finished_at"] = _ts(job.finished_at)
    elif reopen and run.finished_at:
        fields["finished_at"] = None
    return run_status_set(run, job.status, note=note, reopen=reopen, **fields)


def run_job_adopt(run: TrainingRun, job: RemoteJob, provider, *, note: str, reopen: bool = False) -> TrainingRun:
    """Store the job id the moment it is known, then its state. A run cancelled meanwhile cancels the job too.
    `reopen`: an operator adopts a job for a run already marked failed (its worker stopped): the run follows
    the job again (the one allowed move back, noted on the timeline)."""
    TrainingRun.objects.filter(pk=run.pk, job_id__isnull=True).update(job_id=job.id, updated_at=timezone.now())
    run.refresh_from_db()
    if run.job_id != job.id:
        logger.error("run %s already has job %s; remote job %s was not adopted", run.pk, run.job_id, job.id)
        return run
    if run.status == S.CANCELLED:
        try:
            job = provider.cancel_job(job.id)
        except ProviderError as exc:
            TrainingRun.objects.filter(pk=run.pk).update(sync_error=f"cancel after launch: {exc.message}")
            return run
        reopen = False
    reopen = reopen and run.status == S.FAILED
    return run_job_apply(run, job, note=note + (" (the run had been marked failed)" if reopen else ""), reopen=reopen)


def _merge_metrics(run: TrainingRun, rows: list[dict], *, source: str) -> int:
    """Upsert per-step metrics; a value present in `rows` replaces the stored one, a missing one is kept."""
    if not rows:
        return 0
    existing = {m.step: m for m in RunMetric.objects.filter(run=run)}
    changed = {}
    for row in rows:
        step = int(row["step"])
        metric = changed.get(step) or existing.get(step) or RunMetric(run=run, step=step)
        for remote, local in _METRIC_FIELDS.items():
            value = row.get(remote)
            if value is not None:
                setattr(metric, local, float(value))
        metric.source = source if metric.pk is None else metric.source
        changed[step] = metric
    fields = sorted(set(_METRIC_FIELDS.values()))
    RunMetric.objects.bulk_update([m for m in changed.values() if m.pk], fields)
    # A concurrent sync may have stored the same step meanwhile: its copy stands.
    RunMetric.objects.bulk_create([m for m in changed.values() if not m.pk], ignore_conflicts=True)
    return len(changed)


def _sync_events(run: TrainingRun, provider) -> int:
    known = set(RunEvent.objects.filter(run=run).values_list("remote_id", flat=True))
    events = provider.list_events(run.job_id, known_ids=known)
    if not events:
        return 0
    # Stored once each: the remote id is unique, a concurrent sync's copy is ignored.
    RunEvent.objects.bulk_create(
        [
            RunEvent(
                run=run,
                remote_id=e.id,
                created_at_remote=_ts(e.created_at),
                level=e.level,
                type=e.type,
                message=e.message,
                data=e.data,
            )
            for e in events
        ],
        ignore_conflicts=True,
    )
    _merge_metrics(
        run, [e.data for e in events if e.type == "metrics" and e.data.get("step") is not None], source="event"
    )
    return len(events)


def _sync_checkpoints(run: TrainingRun, provider) -> None:
    for checkpoint in provider.list_checkpoints(run.job_id):
        RunCheckpoint.objects.update_or_create(
            remote_id=checkpoint.id,
            defaults={
                "run": run,
                "step": checkpoint.step,
                "metrics": checkpoint.metrics,
                "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
                "created_at_remote": _ts(checkpoint.created_at),
            },
        )


def _sync_result_file(run: TrainingRun, provider) -> None:
    if not run.result_file_id or run.result_file_parsed:
        return
    rows = result_csv_rows(provider.result_file_content(run.result_file_id))
    _merge_metrics(run, rows, source="result_file")
    TrainingRun.objects.filter(pk=run.pk).update(result_file_parsed=True)


def _sync_refusals(run: TrainingRun) -> list[dict]:
    """What the provider dropped or refused (events, a failed job's error), tied to the dataset members on
    those exported lines and flagged on their examples (curation leaves them out of the next build)."""
    from curation.selectors import dataset_version_export_lines
    from curation.services.example_flags import examples_flag_provider_refused

    events = [
        RemoteEvent(id=e.remote_id, created_at=None, level=e.level, type=e.type, message=e.message, data=e.data)
        for e in RunEvent.objects.filter(run=run).exclude(type="metrics")
    ]
    refusals = provider_refusals(
        events=events, error_code=run.error_code, error_message=run.error_message, error_param=run.error_param
    )
    if not refusals:
        return run.provider_refusals or []
    lines = {
        split: dataset_version_export_lines(version=run.dataset_version, split=split)
        for split in {r.split for r in refusals}
    }
    recorded = []
    for refusal in refusals:
        members = lines[refusal.split]
        member_id, example_id = members[refusal.line - 1] if refusal.line <= len(members) else (None, None)
        recorded.append(
            {
                "split": refusal.split,
                "line": refusal.line,
                "member_id": member_id,
                "example_id": example_id,
                "reason": refusal.reason,
                "source": refusal.source,
            }
        )
    if recorded != (run.provider_refusals or []):
        TrainingRun.objects.filter(pk=run.pk).update(provider_refusals=recorded)
        run.provider_refusals = recorded
        examples_flag_provider_refused(
            reasons={
                r["example_id"]: f"Run {run.pk} ({run.provider}), {r['split']} line {r['line']}: {r['reason']}"
                for r in recorded
                if r["example_id"]
            }
        )
    return recorded


def training_run_sync(*, run: TrainingRun) -> TrainingRun:
    """Bring the run up to date with its remote job: status, events (once each), metrics, checkpoints,
    model, trained tokens and cost. Transient provider trouble is noted on the run, which keeps its state."""
    run = TrainingRun.objects.select_related("base_model", "dataset_version").get(pk=run.pk)
    provider = get_provider(run.provider)
    if not run.job_id:
        if run.status == S.UPLOADING:
            return training_run_reconcile(run=run)
        return run
    try:
        run = run_job_apply(run, provider.retrieve_job(run.job_id))
        if _sync_events(run, provider) or run.status == S.FAILED:
            _sync_refusals(run)
        _sync_checkpoints(run, provider)
        if run.status == S.SUCCEEDED:
            _sync_result_file(run, provider)
    except ProviderError as exc:
        TrainingRun.objects.filter(pk=run.pk).update(
            sync_error=f"{exc.code}: {exc.message}", last_synced_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    TrainingRun.objects.filter(pk=run.pk).update(sync_error="", last_synced_at=timezone.now())
    run.refresh_from_db()
    return run


def training_run_reconcile(*, run: TrainingRun) -> TrainingRun:
    """A launched run with no job id: adopt its job if one carries its run id (a worker died before saving
    it), else start it again when nobody holds it (Redis was away). A run a worker holds is left to its lease:
    the recovery (finetune/services/run_start_leases.py) starts it again once the lease has run out."""
    provider = get_provider(run.provider)
    if provider.calls_api:
        try:
            found = provider.find_job(run_id=run.pk)
        except ProviderError as exc:
            TrainingRun.objects.filter(pk=run.pk).update(sync_error=f"{exc.code}: {exc.message}")
            return run
        if found is not None:
            return run_job_adopt(run, found, provider, note="adopted by sync (found by metadata)")
    unclaimed = TrainingRun.objects.filter(
        pk=run.pk, status=S.UPLOADING, job_id__isnull=True, worker_claimed_at__isnull=True
    ).exists()
    if unclaimed:
        try:
            training_run_enqueue_start(run=run)
        except Exception as exc:  # QueueUnavailable: the next sync tries again
            logger.warning("could not enqueue the start of run %s: %s", run.pk, exc)
    run.refresh_from_db()
    return run


def training_runs_active():
    """Runs the periodic sync looks at: a remote job not finished yet, or finished with its results not fetched."""
    return (
        TrainingRun.objects.exclude(provider=ProviderName.DRYRUN)
        .filter(
            Q(job_id__isnull=False)
            & (~Q(status__in=S.TERMINAL) | Q(status=S.SUCCEEDED, result_file_parsed=False) & ~Q(result_file_id=""))
            | Q(status=S.UPLOADING, job_id__isnull=True)
        )
        .select_related("base_model", "dataset_version")
    )


def training_runs_sync_all() -> dict[str, int]:
    """The one periodic job: sync every active run, adopt or restart runs left without a job id."""
    counts = {"synced": 0, "failed": 0}
    for run in training_runs_active():
        try:
            training_run_sync(run=run)
            counts["synced"] += 1
        except Exception:  # one broken run must not stop the others
            logger.exception("sync of run %s failed", run.pk)
            counts["failed"] += 1
    # Dry runs left uploading (Redis away at launch) are restarted too.
    for run in TrainingRun.objects.filter(provider=ProviderName.DRYRUN, status=S.UPLOADING):
        training_run_reconcile(run=run)
    return counts
