"""Real `manage.py rqworker` processes for tests that kill them: start one, SIGKILL it (with its work-horse and
render process), wait on a condition with a bounded timeout, wait for a lease to run out.

The worker is another process: it sees the database the test writes only through a file (SQLite) or a server
(PostgreSQL). `database_file` points Django at an SQLite file both processes open; `worker_env` is what the
worker's environment says, with short leases so a test waits seconds, not minutes. Fixtures built on these
live in tests/gestima/conftest.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from django.db import connections
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[1]
LEASE = 3  # seconds: short, so a test waits for a lease to run out in a few seconds (heartbeat every 0.5 s)
HEARTBEAT = 0.5
MAX_ATTEMPTS = 3
STEP_DEADLINE = 60  # no wait below is longer than this


@contextmanager
def database_file(path: Path):
    """Django's default database, for the block, is the SQLite file at `path` (whatever the suite runs on)."""
    from django.db.backends.sqlite3.base import DatabaseWrapper

    # A file both processes open, nothing to create or drop on a server.
    original = connections["default"]
    wrapper = DatabaseWrapper(
        dict(
            original.settings_dict,
            ENGINE="django.db.backends.sqlite3",
            NAME=str(path),
            HOST="",
            PORT="",
            USER="",
            PASSWORD="",
            OPTIONS={"timeout": 20},
        ),
        alias="default",
    )
    connections["default"] = wrapper
    try:
        yield
    finally:
        wrapper.close()
        connections["default"] = original


def worker_env(*, database_url: str, settings, tmp_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker the test starts: its database, the test's media folders, short leases."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gestima.settings_test",
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "EXPORTS_ROOT": str(settings.EXPORTS_ROOT),
        "TMPDIR": str(tmp_dir),
        "JOB_LEASE_SECONDS": str(LEASE),
        "JOB_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "JOB_RECOVER_INTERVAL_SECONDS": "1",
        "JOB_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        **extra,
    }


def short_leases(settings) -> None:
    """The test's own side agrees with its workers' (recovery run in the test reads these)."""
    settings.JOB_LEASE_SECONDS = LEASE
    settings.JOB_HEARTBEAT_SECONDS = HEARTBEAT
    settings.JOB_MAX_ATTEMPTS = MAX_ATTEMPTS


def start_worker(db, queue: str, *, burst: bool = False, worker_class: str | None = None) -> subprocess.Popen:
    """`manage.py rqworker <queue>` in a session of its own; `db` is {"env", "log", ...} (see the fixtures)."""
    args = [sys.executable, "manage.py", "rqworker", queue] + (["--burst"] if burst else [])
    args += ["--worker-class", worker_class] if worker_class else []
    with open(db["log"], "ab") as log:
        return subprocess.Popen(
            args, cwd=ROOT, env=db["env"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def kill(process: subprocess.Popen, *, horse_only: bool = False) -> None:
    """SIGKILL the worker, its work-horse (RQ puts it in a process group of its own) and the render process
    at once, as the out-of-memory killer or a `docker kill` would; or only the work-horse and below."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    family = list(children)
    if not horse_only and process.poll() is None:
        try:
            family.insert(0, psutil.Process(process.pid))
        except psutil.NoSuchProcess:
            pass  # the worker is gone already (a failed step stopped it): nothing left to kill
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    if not horse_only:
        process.wait(timeout=10)
    psutil.wait_procs(children, timeout=10)


def wait_for(what: str, check, db, process=None, deadline: float = STEP_DEADLINE):
    """`check()`'s first true result, polled every 0.1 s; the test fails (with the worker's log) after
    `deadline` seconds, or as soon as `process` has exited."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.1)
    if process is not None and process.poll() is None:
        kill(process)
    log = db["log"].read_text(errors="replace")[-3000:] if db["log"].exists() else ""
    pytest.fail(f"waited {deadline} s for {what}; worker log:\n{log}")


def wait_lease_out(db, lease_of) -> None:
    """Until the row's lease has run out, then one lease more: the dead process's files (their age counts too)
    must be older than LEASE for the sweep to take them."""
    wait_for("the lease to run out", lambda: (lease_of() or timezone.now()) <= timezone.now(), db)
    time.sleep(LEASE + 0.5)
