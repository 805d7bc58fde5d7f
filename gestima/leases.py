"""Leases on the rows a running job holds, and the files a killed job leaves behind.

A job renews its row's lease on a thread while it runs (`lease_kept`); a lease that ran out means the
worker is gone (SIGKILL, the out-of-memory killer) and `gestima.recovery` takes the row back. Work files
carry the pid of the process that writes them, so a sweep removes only those of processes that are dead.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

RENDER_WORKDIR_PREFIX = "gestima-render-"
_WORKDIR_PID = re.compile(rf"^{RENDER_WORKDIR_PREFIX}(\d+)-")
# `.train.jsonl.<pid>.<8 hex>.partial` (exports) and `.<sha>.png.<pid>.partial` (open-weights images): the names
# `curation.atomic_files.partial_path` makes.
_PARTIAL_PID = re.compile(r"^\..+\.(\d+)(?:\.[0-9a-f]{8})?\.partial$")


def lease_until() -> datetime:
    """The end of a lease taken or renewed now."""
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)


def worker_stopped_message(*, doing: str, attempts: int, again: str, then: str = "") -> str:
    """What a person reads on a row whose worker was killed on every attempt; `then` adds what a retry keeps."""
    times = "once" if attempts == 1 else f"{attempts} times"
    return (
        f"The worker stopped while {doing} (killed or out of memory) {times}; it was not retried again. "
        f"{again} to retry{'; ' + then if then else ''}."
    )


@contextmanager
def lease_kept(renew: Callable[[], int]) -> Iterator[None]:
    """Call `renew()` every JOB_HEARTBEAT_SECONDS on a thread while the block runs.

    `renew` updates the row's lease with a conditional UPDATE and returns the rows it changed; 0 (the row
    was taken back or finished) ends the heartbeat. A failed renewal is logged and tried again: the lease
    is three heartbeats long, so one database hiccup does not hand a live job to the recovery.
    """
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                try:
                    if not renew():
                        return
                except Exception:  # noqa: BLE001 - a heartbeat never kills the job it belongs to
                    logger.warning("could not renew a job lease", exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=beat, name="job-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def render_workdir_make() -> str:
    """A temporary folder for one render, named with this process's pid (see `render_workdirs_remove`)."""
    return tempfile.mkdtemp(prefix=f"{RENDER_WORKDIR_PREFIX}{os.getpid()}-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _abandoned(path: Path, pid: int) -> bool:
    # Both tests: a pid is only meaningful on this host, and a folder on a shared volume may belong to a
    # live process elsewhere; that one keeps writing, so its files are never older than a lease.
    if pid == os.getpid() or _pid_alive(pid):
        return False
    try:
        return time.time() - path.stat().st_mtime > settings.JOB_LEASE_SECONDS
    except FileNotFoundError:
        return False


def render_workdirs_remove(tmp_dir: str | None = None) -> list[str]:
    """Remove render folders left in the temp dir by processes that died; returns their paths."""
    removed = []
    root = Path(tmp_dir or tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _WORKDIR_PID.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and _abandoned(Path(entry.path), int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def partial_files_remove(directory, *, depth: int = 1) -> list[str]:
    """Remove `.partial` files written by processes that died, in `directory` and `depth - 1` levels below."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth > 1:
                removed += partial_files_remove(entry.path, depth=depth - 1)
            continue
        match = _PARTIAL_PID.match(entry.name)
        if match and _abandoned(Path(entry.path), int(match.group(1))):
            try:
                os.unlink(entry.path)
                removed.append(entry.path)
            except FileNotFoundError:
                pass
    return removed
