"""Shared fixtures: real Redis (a database of the tests' own), a burst worker, media in a temp dir, the corpus."""

from pathlib import Path

import django_rq
import pytest
from redis.exceptions import RedisError

from gestima.queues import queue_ping, QueueUnavailable

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def pytest_sessionstart(session):
    try:
        queue_ping("default")
    except QueueUnavailable as exc:
        pytest.exit(f"Redis does not answer ({exc}). Start it, or run the tests with './dev test'.", returncode=3)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RUNS_ROOT = tmp_path / "media" / "runs"
    settings.EXPORTS_ROOT = tmp_path / "media" / "exports"
    return settings.MEDIA_ROOT


@pytest.fixture
def s3_storage(settings, monkeypatch):
    """Settings switched to STORAGE_BACKEND=s3 against the session's own S3 server (moto, over HTTP), with a
    fresh bucket; yields (boto3 client, bucket). The rest of the suite stays on local folders."""
    from tests.s3_server import session_s3_endpoint

    endpoint = session_s3_endpoint()
    if endpoint is None:
        pytest.skip("moto[server] is not installed (requirements-dev.txt): no local S3 server to test against")
    import uuid

    import boto3

    # boto3 finds its keys in the environment, as in production; the local server accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "gestima-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "gestima-test-secret")
    bucket = f"gestima-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    settings.STORAGE_BACKEND = "s3"
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.STORAGES = {**settings.STORAGES, **settings.S3_STORAGES}
    yield client, bucket


@pytest.fixture(autouse=True)
def _clean_redis():
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield
    try:
        connection.flushdb()
    except RedisError:
        pass


@pytest.fixture(autouse=True)
def _no_database_session_left_open(request, django_db_blocker):
    """On PostgreSQL, a test that used the database leaves no session of its own behind.

    A connection left open by a thread, a live server or a worker keeps the test database busy to the
    end, and PostgreSQL then refuses to drop it ("is being accessed by other users"). Checked here, at
    the test that leaked it, with a few seconds' grace for threads that are still closing theirs.
    """
    yield
    from django.db import connection

    if connection.vendor != "postgresql" or "django_db_setup" not in request.fixturenames:
        return
    import time

    import psycopg

    own = None
    if connection.connection is not None and not connection.connection.closed:
        own = connection.connection.info.backend_pid
    settings = connection.settings_dict
    conninfo = {
        key: value
        for key, value in (
            ("host", settings["HOST"]),
            ("port", settings["PORT"]),
            ("user", settings["USER"]),
            ("password", settings["PASSWORD"]),
        )
        if value
    }
    deadline = time.monotonic() + 5
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as watcher:
        while True:
            others = watcher.execute(
                "SELECT pid, state, left(query, 120) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                (settings["NAME"], own or 0),
            ).fetchall()
            if not others or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert not others, f"the test left {len(others)} database session(s) open (pid, state, last query): {others}"


@pytest.fixture
def corpus():
    """The shared corpus beside the project; tests that need it skip in a clone without it."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (it sits beside the project in the team's checkout)")
    return CORPUS


@pytest.fixture
def run_worker():
    """Run every queued job with a real RQ worker in burst mode (in-process, so it sees the test database)."""
    from rq import SimpleWorker

    def run(*queues):
        worker = django_rq.get_worker(*(queues or ("default", "render", "openai")), worker_class=SimpleWorker)
        worker.work(burst=True, with_scheduler=False)
        return worker

    return run


@pytest.fixture
def roles(db):
    """The Reviewer and Manager groups, as the data migration creates them."""
    from gestima.roles import roles_sync

    return roles_sync()
