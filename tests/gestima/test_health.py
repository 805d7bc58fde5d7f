"""Health endpoints: the liveness answer touches nothing, readiness checks the database, Redis and storage,
the detailed answer (behind HEALTH_TOKEN) reports each queue; a dead or silent Redis is reported, not waited on.
Real Redis (the session's) for the healthy side; a closed port and a server that never answers for the other.
"""

import socket
import threading
import time
from datetime import timedelta

import django_rq
import pytest
from django.utils import timezone

from gestima import health

PROBE_HOST = "10.0.0.9"  # a balancer probes the machine's address: never in ALLOWED_HOSTS in production


@pytest.fixture(autouse=True)
def _no_check_left_running():
    yield
    # A check cut off at its deadline ends on its own soon after (its socket timeouts): wait for it, so the
    # next test does not find it "still running".
    for thread in threading.enumerate():
        if thread.name.startswith("health-"):
            thread.join(10)


def _get(client, path, **headers):
    return client.get(path, HTTP_HOST=PROBE_HOST, **headers)


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def silent_redis():
    """A server that accepts connections and never answers (a hung Redis, a blackholed network path)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # the kernel completes the handshake; nobody ever reads
    yield sock.getsockname()[1]
    sock.close()


def _redis_at(settings, port):
    settings.RQ_QUEUES = {
        name: dict(conf, URL=f"redis://127.0.0.1:{port}/0") for name, conf in settings.RQ_QUEUES.items()
    }


@pytest.fixture
def token(settings):
    settings.HEALTH_TOKEN = "health-token-for-tests"
    return {"HTTP_AUTHORIZATION": "Bearer health-token-for-tests"}


@pytest.mark.django_db
def test_liveness_answers_even_with_redis_gone(client, settings, closed_port):
    _redis_at(settings, closed_port)
    response = _get(client, "/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readiness_checks_database_redis_and_storage(client, settings):
    response = _get(client, "/health/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "storage": True,
    }
    # The storage check wrote, read and deleted its file: nothing is left behind.
    probes = settings.MEDIA_ROOT / health.PROBE_PREFIX
    assert not probes.exists() or list(probes.iterdir()) == []


@pytest.mark.django_db
def test_readiness_names_a_redis_that_refuses_connections(client, settings, closed_port):
    _redis_at(settings, closed_port)
    started = time.monotonic()
    response = _get(client, "/health/ready")
    assert time.monotonic() - started < settings.HEALTH_CHECK_TIMEOUT_SECONDS
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}  # no address in a public answer
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]


@pytest.mark.django_db
def test_the_detailed_answer_gives_the_reason_in_words(client, settings, closed_port, token):
    _redis_at(settings, closed_port)
    response = _get(client, "/health/detail", **token)
    assert response.status_code == 503
    error = response.json()["checks"]["redis"]["error"]
    assert error.startswith("ConnectionError: ") and str(closed_port) in error


@pytest.mark.django_db
def test_a_silent_redis_is_reported_within_the_timeout_not_waited_on(client, settings, silent_redis, token):
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5
    _redis_at(settings, silent_redis)
    started = time.monotonic()
    response = _get(client, "/health/detail", **token)
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"] == {"ok": False, "error": "CheckTimeout: no answer within 0.5 s"}
    assert checks["queues"] == {"ok": False, "error": "CheckTimeout: no answer within 0.5 s"}
    assert checks["database"]["ok"] and checks["storage"]["ok"]


@pytest.mark.django_db
def test_a_check_still_stuck_from_the_last_probe_is_not_started_again(client, settings, silent_redis):
    settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.5
    _redis_at(settings, silent_redis)
    first = _get(client, "/health/ready")
    assert first.status_code == 503 and first.json()["checks"]["redis"] == {"ok": False, "error": "CheckTimeout"}
    second = _get(client, "/health/ready")  # at once: the first probe's Redis check still waits on its socket
    assert second.status_code == 503
    assert second.json()["checks"]["redis"]["error"].startswith("the previous check has not finished")
    assert second.json()["checks"]["database"]["ok"]
    assert [t.name for t in threading.enumerate()].count("health-redis") == 1  # one stuck thread, not two


@pytest.mark.django_db
def test_the_detailed_answer_needs_the_token(client, settings):
    settings.HEALTH_TOKEN = ""
    assert _get(client, "/health/detail").status_code == 404  # off until a token is set
    settings.HEALTH_TOKEN = "the-right-one"
    assert _get(client, "/health/detail").status_code == 401
    assert _get(client, "/health/detail", HTTP_AUTHORIZATION="Bearer the-wrong-one").status_code == 401
    assert _get(client, "/health/detail", HTTP_AUTHORIZATION="Bearer the-right-one").status_code == 200


def _enqueue(queue_name, func="curation.jobs.drawings_reconcile", *, age_seconds=0):
    queue = django_rq.get_queue(queue_name, commit_mode="auto")
    job = queue.enqueue(func)
    if age_seconds:
        job.enqueued_at = timezone.now() - timedelta(seconds=age_seconds)
        job.save()
    return job


@pytest.mark.django_db
def test_the_detailed_answer_reports_each_queue(client, token, run_worker):
    _enqueue("render", age_seconds=600)
    _enqueue("render", age_seconds=30)
    _enqueue("openai", "finetune.jobs.a_job_removed_by_an_upgrade")  # fails in the worker: no such function
    run_worker("openai")

    response = _get(client, "/health/detail", **token)
    assert response.status_code == 200, response.content
    queues = response.json()["checks"]["queues"]["queues"]
    assert queues["default"] == {"depth": 0, "oldest_queued_age_seconds": None, "failed": 0, "workers": 0}
    assert queues["render"]["depth"] == 2
    assert 595 <= queues["render"]["oldest_queued_age_seconds"] <= 660
    assert queues["render"]["failed"] == 0
    assert queues["openai"]["depth"] == 0 and queues["openai"]["failed"] == 1
