"""Commands that start background work (`build_dataset`, `import_production_times`): queue it as the admin does and
follow its row until it ends, or run it in this process with --sync; exit 0 done, 1 failed (or not queued), 2 bad
arguments."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from gestima.queues import QueueUnavailable
from gestima.work import FINISHED, WorkKind, WorkStatus, work_progress_text

POLL_SECONDS = 1.0
# Still queued after this long: no worker may be running; say how to start one (or to use --sync), once.
WORKER_HINT_SECONDS = 15.0

EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2


def work_arguments_add(parser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--sync", action="store_true", help="run the work in this process (no worker or Redis needed) and wait for it"
    )
    how.add_argument("--no-wait", action="store_true", help="only queue the work and print its id")


def _progress_line(row) -> str:
    if row.status not in FINISHED:
        return work_progress_text(row)  # "Running: 1,200 / 4,000 (30%) (reading lines)"
    return row.get_status_display() + (f": {row.done:,} / {row.total:,}" if row.total else "")


def _pause() -> None:
    time.sleep(POLL_SECONDS)


def work_follow(command: BaseCommand, *, kind: WorkKind, pk: int, label: str):
    """Print the row's progress (a line each time it changes) until it is done or failed; returns the row."""
    last, started, hinted = None, time.monotonic(), False
    while True:
        row = kind.model.objects.get(pk=pk)
        line = f"{label}: {_progress_line(row)}"
        if line != last:
            command.stdout.write(line)
            last = line
        if row.status in FINISHED:
            return row
        if row.status == WorkStatus.QUEUED and not hinted and time.monotonic() - started > WORKER_HINT_SECONDS:
            command.stdout.write(
                f"  still waiting for a worker: start one (`manage.py rqworker {kind.queue}`), or stop this "
                "(Ctrl-C: the work stays queued) and run the command with --sync"
            )
            hinted = True
        _pause()


def work_command_run(
    command: BaseCommand,
    *,
    kind: WorkKind,
    label: Callable[[int], str],
    request: Callable[[bool], tuple],
    run: Callable[[int], object],
    options: dict,
):
    """The common flow: `request(queue)` records the row (and queues its job unless --sync); then --no-wait prints
    the id, --sync runs `run(pk)` here, and by default the row is followed. Returns the finished row (None with
    --no-wait); a failed row is a CommandError with the row's error (exit 1)."""
    sync = options.get("sync", False)
    try:
        row, queued = request(not sync)
    except QueueUnavailable as exc:
        raise CommandError(
            f"{exc} Nothing was queued. Start Redis (see REDIS_URL) and a worker (`manage.py rqworker "
            f"{kind.queue}`), or run this command with --sync to do the work in this process.",
            returncode=EXIT_FAILED,
        ) from None
    name = label(row.pk)
    if options.get("no_wait"):
        command.stdout.write(str(row.pk))  # alone on its line: a script reads it
        return None
    if not queued:
        command.stdout.write(f"{name}: the same work is already under way; following it")
    else:
        command.stdout.write(f"{name}: running in this process (--sync)" if sync else f"{name} queued")
    if sync:
        try:
            run(row.pk)  # returns at once when a worker has it already: then it is followed like any other
        except Exception as exc:  # noqa: BLE001 - stored on the row (unless the job stored its own), printed below
            # No worker and no lease recovery here: a row the job left unfinished would be followed forever.
            kind.fail(row.pk, error=f"{kind.stopped}: {type(exc).__name__}: {exc}")
    row = work_follow(command, kind=kind, pk=row.pk, label=name)
    if row.status == WorkStatus.FAILED:
        raise CommandError(f"{name} failed: {row.error}", returncode=EXIT_FAILED)
    return row
