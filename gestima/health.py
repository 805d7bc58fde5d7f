"""Health checks for the load balancer and monitoring: is this process up, can it reach its database,
Redis and storage, and how deep are the job queues.

Every check runs on a thread of its own with a deadline, so a dead Redis or a hung network volume is
reported within HEALTH_CHECK_TIMEOUT_SECONDS instead of holding the probe (and the web worker) until the
load balancer gives up. A check still stuck from an earlier probe is reported as such, not started again:
at most one stuck thread per check per process, however often the balancer asks.
"""

import threading
import time
import uuid
from datetime import datetime, timezone

import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connections
from rq import Queue, Worker
from rq.job import Job

QUEUE_NAMES = ("default", "render", "openai")
# Tiny files the storage check writes, reads back and deletes (a prefix of their own, easy to spot).
PROBE_PREFIX = "health-probe"

_running: dict[str, float] = {}  # check name -> when its still-unfinished thread started
_running_lock = threading.Lock()


class CheckTimeout(Exception):
    pass


def _redis_client(queue_name: str = "default") -> redis.Redis:
    # A client of our own with both timeouts: the queues' shared client has a connect timeout only, so a
    # Redis that accepts but never answers would hold the check's thread for good. The thread's deadline
    # answers the probe; these (twice as long) free the thread soon after.
    timeout = 2 * settings.HEALTH_CHECK_TIMEOUT_SECONDS
    return redis.Redis.from_url(
        settings.RQ_QUEUES[queue_name]["URL"], socket_connect_timeout=timeout, socket_timeout=timeout
    )


def _check_database() -> dict:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connections.close_all()  # this thread ends here: its connection must not outlive it
    return {}


def _check_redis() -> dict:
    client = _redis_client()
    try:
        client.ping()
    finally:
        client.close()
    return {}


def _check_storage() -> dict:
    name = default_storage.save(f"{PROBE_PREFIX}/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name, "rb") as handle:
            if handle.read() != b"ok":
                raise OSError(f"{name} read back different bytes than were written")
    finally:
        default_storage.delete(name)
    return {}


def _age_seconds(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # RQ stores UTC
    return round(max((now - moment).total_seconds(), 0.0), 1)


def _check_queues() -> dict:
    """Per queue: jobs waiting, age of the oldest, failed jobs kept in RQ's registry, workers listening."""
    now = datetime.now(timezone.utc)
    queues = {}
    clients = []
    try:
        for name in QUEUE_NAMES:
            client = _redis_client(name)
            clients.append(client)
            queue = Queue(name, connection=client)
            # Workers pop from the head: the oldest waiting job is among the first (a job put at the front
            # is younger). Ids whose job has expired are skipped.
            head = [job for job in Job.fetch_many(queue.get_job_ids(0, 10), connection=client) if job]
            oldest = min((job.enqueued_at for job in head if job.enqueued_at), default=None)
            queues[name] = {
                "depth": queue.count,
                "oldest_queued_age_seconds": _age_seconds(oldest, now),
                "failed": queue.failed_job_registry.count,
                "workers": Worker.count(connection=client, queue=queue),
            }
    finally:
        for client in clients:
            client.close()
    return {"queues": queues}


CHECKS = {
    "database": _check_database,
    "redis": _check_redis,
    "storage": _check_storage,
    "queues": _check_queues,
}


def _run_checks(names: list[str], *, detail: bool) -> dict:
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    results: dict[str, dict] = {}
    threads = {}
    started = time.monotonic()
    for name in names:
        with _running_lock:
            since = _running.get(name)
            if since is None:
                _running[name] = started
        if since is not None:
            results[name] = {"ok": False, "error": f"the previous check has not finished after {started - since:.0f} s"}
            continue
        box: dict = {}
        thread = threading.Thread(target=_run_one, args=(name, box), name=f"health-{name}", daemon=True)
        thread.start()
        threads[name] = (thread, box)
    for name, (thread, box) in threads.items():
        thread.join(max(timeout - (time.monotonic() - started), 0))
        if thread.is_alive():
            box = {"error": CheckTimeout(f"no answer within {timeout:g} s")}
        results[name] = _result(box, detail=detail)
    return {name: results[name] for name in names}


def _run_one(name: str, box: dict) -> None:
    started = time.monotonic()
    try:
        box["data"] = CHECKS[name]()
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is the answer, not a crash
        box["error"] = exc
    finally:
        box["ms"] = round((time.monotonic() - started) * 1000, 1)
        with _running_lock:
            _running.pop(name, None)


def _result(box: dict, *, detail: bool) -> dict:
    error = box.get("error")
    result: dict = {"ok": error is None}
    if "ms" in box and error is None:
        result["ms"] = box["ms"]
    if error is not None:
        # The public readiness answer names the kind of failure only; the detailed one (behind a token)
        # gives the message, which can hold internal addresses.
        result["error"] = f"{type(error).__name__}: {error}" if detail else type(error).__name__
    elif detail:
        result.update(box.get("data") or {})
    return result


def health_live() -> dict:
    """The process answers: no dependency is touched (a database outage must not restart every web process)."""
    return {"status": "ok"}


def health_ready() -> tuple[bool, dict]:
    """Can this process serve requests: database, Redis and storage each answer within the timeout."""
    checks = _run_checks(["database", "redis", "storage"], detail=False)
    ok = all(check["ok"] for check in checks.values())
    return ok, {"status": "ok" if ok else "fail", "checks": checks}


def health_detail() -> tuple[bool, dict]:
    """Readiness with the reasons in words, plus each RQ queue's depth, oldest job age, failures, workers."""
    checks = _run_checks(["database", "redis", "storage", "queues"], detail=True)
    ok = all(check["ok"] for check in checks.values())
    return ok, {"status": "ok" if ok else "fail", "checks": checks}
