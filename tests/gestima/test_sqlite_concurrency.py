"""On the default SQLite database, 20 reviewers approving at once all succeed (no "database is locked" 500).

Runs in a child process on a SQLite file (the tests' own database is in memory), with the production settings.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="SQLite only")
def test_twenty_reviewers_approving_at_once_on_a_sqlite_file(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gestima.settings",
        "DEBUG": "False",
        "SECRET_KEY": "concurrency-test-key-" + "c" * 40,
        "SECURE_SSL_REDIRECT": "False",
        "ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOG_LEVEL": "CRITICAL",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.gestima.sqlite_approvals", "20"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert 500 not in outcome["statuses"], outcome
    assert all(status == 302 for status in outcome["statuses"]), outcome  # each back to the review screen
    assert outcome["approved"] == 20
    assert outcome["journal_mode"] == "wal"  # readers never wait for the writer
