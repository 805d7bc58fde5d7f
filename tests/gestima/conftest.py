"""Fixtures for tests that start (and kill) real worker processes: a database both the test and its workers see."""

import shutil
import tempfile

import pytest
from django.core.management import call_command

from tests.workers import database_file, short_leases, worker_env


@pytest.fixture(scope="session")
def _migrated_file(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("killed-workers") / "template.sqlite3"
    with django_db_blocker.unblock(), database_file(path):
        call_command("migrate", verbosity=0)
    return path


def _worker_tmp(tmp_path, monkeypatch):
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_dir))  # the render folders of the test's workers
    return tmp_dir


@pytest.fixture
def shared_db(_migrated_file, tmp_path, django_db_blocker, settings, monkeypatch):
    """A migrated SQLite file this test and its worker processes share (whatever the suite runs on); short
    leases on both sides."""
    path = tmp_path / "shared.sqlite3"
    shutil.copyfile(_migrated_file, path)
    tmp_dir = _worker_tmp(tmp_path, monkeypatch)
    short_leases(settings)
    env = worker_env(database_url=f"sqlite:///{path}", settings=settings, tmp_dir=tmp_dir)
    with django_db_blocker.unblock(), database_file(path):
        yield {"env": env, "tmp": tmp_dir, "log": tmp_path / "worker.log"}


@pytest.fixture
def worker_db(transactional_db, request, tmp_path, settings, monkeypatch):
    """The database the suite runs on, seen by the test and its worker processes; short leases on both sides.

    PostgreSQL: the session's test database, committed as the test writes (a transactional test) so a worker
    reads it. SQLite: the session's database lives in memory, invisible to another process, so a migrated
    file both open (as `shared_db`). (`transactional_db` is named here, not asked for inside: pytest-django
    creates the session's test database only for tests whose fixtures name it.)
    """
    from django.db import connections

    if connections["default"].vendor != "postgresql":
        yield request.getfixturevalue("shared_db")
        return
    tmp_dir = _worker_tmp(tmp_path, monkeypatch)
    short_leases(settings)
    conf = connections["default"].settings_dict
    login = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    url = f"postgres://{login}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"
    env = worker_env(database_url=url, settings=settings, tmp_dir=tmp_dir)
    yield {"env": env, "tmp": tmp_dir, "log": tmp_path / "worker.log"}
