"""Django for a benchmark: a throwaway SQLite database and media root, never the real ones."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_throwaway(name: str, **env: str) -> Path:
    """Set up Django on a fresh temp dir (returned; the caller removes it) with `env` on top of the defaults."""
    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix=f"gestima-bench-{name}-"))
    # Set before django.setup(): the benchmark must never touch the real database or media.
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "gestima.settings",
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
            "MEDIA_ROOT": str(workdir / "media"),
            "DEBUG": "False",
            "SECRET_KEY": "benchmark-only-key-" + "b" * 40,
            "SECURE_SSL_REDIRECT": "False",
            "LOG_LEVEL": "ERROR",
            **env,
        }
    )
    import django

    django.setup()
    return workdir
