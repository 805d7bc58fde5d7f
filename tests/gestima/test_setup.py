"""Project set-up: the queue dashboard is for superusers only; production settings pass Django's checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_queue_dashboard_refuses_staff_and_serves_superusers(client):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/django_rq/dashboard/").status_code == 403
    assert client.get("/admin/django_rq/dashboard/queues/0/").status_code == 403

    boss = User.objects.create_superuser("boss", password="pw")
    client.force_login(boss)
    response = client.get("/admin/django_rq/dashboard/")
    assert response.status_code == 200
    assert b"render" in response.content and b"openai" in response.content


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("SECURE_SSL_REDIRECT", "DEBUG")},
        "DJANGO_SETTINGS_MODULE": "gestima.settings",
        "DEBUG": "False",
        "SECRET_KEY": "k3J9-vQz8_pL2mWx7RtY4uNc6HbE1aSd5FgT0oPiUyKjMnBvCxZq",
        "ALLOWED_HOSTS": "gestima.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_migrations_match_the_models():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_migrations_create_the_roles_and_seed_base_models():
    from django.contrib.auth.models import Group

    from curation.models import BaseModel

    reviewer = set(Group.objects.get(name="Reviewer").permissions.values_list("codename", flat=True))
    manager = set(Group.objects.get(name="Manager").permissions.values_list("codename", flat=True))
    assert "review_example" in reviewer and "review_example" in manager
    assert not reviewer & {"launch_run", "promote_model", "build_dataset", "export_dataset", "add_drawing"}
    assert {"launch_run", "promote_model", "build_dataset", "export_dataset", "add_drawing"} <= manager
    gpt4o = BaseModel.objects.get(name="gpt-4o-2024-08-06")
    assert str(gpt4o.shutdown_date) == "2027-01-14" and str(gpt4o.jobs_end_date) == "2027-01-06"


def test_each_test_session_owns_its_redis():
    """Two test runs on one machine never flush each other: this session's Redis is a server of its own."""
    import shutil

    import django_rq
    import redis

    if not shutil.which("redis-server"):
        pytest.skip("no redis-server: this session reserved a database of a shared Redis instead")
    ours = django_rq.get_connection("default")
    port = ours.connection_pool.connection_kwargs["port"]
    assert port != 6379
    assert os.environ["REDIS_URL"].startswith(f"redis://127.0.0.1:{port}/")
    ours.set("gestima:test-session-probe", "mine")
    try:
        shared = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
        assert shared.get("gestima:test-session-probe") is None
    except redis.ConnectionError:
        pass  # no shared Redis on this machine: nothing to collide with
