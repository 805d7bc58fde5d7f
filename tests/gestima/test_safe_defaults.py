"""Safe defaults: DEBUG is off unless asked for, production refuses to start without a SECRET_KEY of its own,
`./dev run` writes one into .env, and every page carries a Content-Security-Policy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _django(env_overrides: dict, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")}
    env.update({"DJANGO_SETTINGS_MODULE": "gestima.settings", "SECURE_SSL_REDIRECT": "False", **env_overrides})
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings; {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif((ROOT / ".env").exists(), reason="a developer's .env sets DEBUG and SECRET_KEY")
def test_without_settings_debug_is_off_and_startup_is_refused_without_a_secret_key():
    result = _django({}, "print(settings.DEBUG)")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY is not set" in result.stderr
    result = _django({"SECRET_KEY": "k" * 50}, "print(settings.DEBUG)")
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_the_placeholder_key_is_refused_in_production_and_tolerated_only_with_debug():
    for placeholder in ("change-me-to-a-long-random-string", "dev-insecure-key-change-me", ""):
        result = _django({"DEBUG": "False", "SECRET_KEY": placeholder}, "print(1)")
        assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr
    result = _django({"DEBUG": "True", "SECRET_KEY": ""}, "print(settings.DEBUG)")
    assert result.returncode == 0 and result.stdout.strip() == "True"


def _ensure_secret_key(workdir: Path) -> str:
    """Run dev's ensure_secret_key function alone in `workdir` (the rest of ./dev is not executed)."""
    function = subprocess.run(
        ["sed", "-n", "/^ensure_secret_key()/,/^}/p", str(ROOT / "dev")], capture_output=True, text=True, check=True
    ).stdout
    assert function.strip(), "ensure_secret_key() not found in ./dev"
    script = f"set -euo pipefail\nsay() {{ :; }}\nPY={sys.executable}\n{function}\nensure_secret_key\n"
    subprocess.run(["bash", "-c", script], cwd=workdir, check=True, timeout=60)
    return (workdir / ".env").read_text()


def test_dev_run_writes_a_random_secret_key_into_env_once(tmp_path):
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    assert "DEBUG=True" in (tmp_path / ".env").read_text()  # what ./dev run copies: development runs with DEBUG
    first = _ensure_secret_key(tmp_path)
    key = [line for line in first.splitlines() if line.startswith("SECRET_KEY=")]
    assert len(key) == 1 and len(key[0]) > len("SECRET_KEY=") + 40
    assert _ensure_secret_key(tmp_path) == first  # kept on the next run
    other = tmp_path / "other"
    other.mkdir()
    (other / ".env").write_text("DEBUG=True\n")
    assert _ensure_secret_key(other).count("SECRET_KEY=") == 1
    assert key[0] not in (other / ".env").read_text()


def _script_src(response) -> str:
    return response["Content-Security-Policy"].split("script-src", 1)[1].split(";", 1)[0]


def test_pages_carry_a_content_security_policy(client, db):
    from tests.factories import make_user

    response = client.get("/admin/login/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert "unsafe-inline" not in _script_src(response)
    client.force_login(make_user(superuser=True, username="root"))
    assert "unsafe-inline" not in _script_src(client.get("/admin/curation/example/"))
    # django-rq's job lists run an inline script (select all): allowed there, for superusers only.
    assert "'unsafe-inline'" in _script_src(client.get("/admin/django_rq/dashboard/queues/0/"))
