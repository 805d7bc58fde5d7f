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


@pytest.fixture(autouse=True)
def _clean_redis():
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield
    try:
        connection.flushdb()
    except RedisError:
        pass


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
    from curation.services.roles import roles_sync

    return roles_sync()
