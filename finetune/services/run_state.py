"""Training runs, shared by every step: the refusal error, who may act, and the one rule for moving a status.

A run's status only moves forward (`run_status_set`); every move and progress note goes on its timeline.
The steps live beside this module: run_launch (create, confirm, launch), run_start (upload, create the
remote job once), run_sync (follow the remote job), run_cancel (cancel, relaunch), run_doctor (provider vs runs).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from finetune.models import TrainingRun

logger = logging.getLogger(__name__)

S = TrainingRun.Status
LAUNCH_PERMISSION = "finetune.launch_run"


class TrainingRunError(Exception):
    """A rule refused the request; the message says why and what to do."""


def run_permission_check(user) -> None:
    # user=None is the shell operator (management commands): whoever can run manage.py owns the install.
    if user is not None and not user.has_perm(LAUNCH_PERMISSION):
        raise PermissionDenied("Only Managers may launch, cancel or relaunch training runs.")


def run_timeline(run: TrainingRun, status: str, *, note: str = "") -> list:
    entry = {"status": status, "at": timezone.now().isoformat()}
    if note:
        entry["note"] = note
    return [*(run.timeline or []), entry]


def run_status_set(run: TrainingRun, status: str, *, note: str = "", reopen: bool = False, **fields) -> TrainingRun:
    """Store a status (and fields). Statuses only move forward (TrainingRun.Status.moves_forward): a late or
    stale answer from the provider never takes a run back. `reopen` is the explicit exception (an operator
    adopting a job for a run that had failed); the timeline says so."""
    if status != run.status and not reopen and not S.moves_forward(run.status, status):
        logger.info("run %s: ignored a move back from %s to %s (%s)", run.pk, run.status, status, note or "no note")
        status = run.status
        fields = {k: v for k, v in fields.items() if k != "finished_at"}
    if status != run.status:
        fields["timeline"] = run_timeline(run, status, note=note)
        fields["status"] = status
        if status in S.TERMINAL and not run.finished_at and "finished_at" not in fields:
            fields["finished_at"] = timezone.now()
    if fields:
        TrainingRun.objects.filter(pk=run.pk).update(**fields, updated_at=timezone.now())
        run.refresh_from_db()
    return run


def run_progress(run: TrainingRun, note: str) -> TrainingRun:
    """A progress line on the timeline without a status change; a later one replaces it (no spam per poll)."""
    timeline = list(run.timeline or [])
    if timeline and timeline[-1].get("progress"):
        timeline.pop()
    timeline.append({"status": run.status, "at": timezone.now().isoformat(), "note": note, "progress": True})
    TrainingRun.objects.filter(pk=run.pk).update(timeline=timeline, updated_at=timezone.now())
    run.timeline = timeline
    return run
