"""Test settings: the real settings, with a Redis server of this test session's own and fast hashing."""

import os

from tests.redis_server import session_redis_url

# Tests flush their Redis: a server started for this session (see tests/redis_server.py), never a shared one.
session_redis_url()
os.environ.setdefault("DEBUG", "False")
os.environ.setdefault("SECURE_SSL_REDIRECT", "False")
# DEBUG is off in tests, so the settings demand a key of our own (never the repository's placeholder).
os.environ.setdefault("SECRET_KEY", "test-only-" + "x" * 50)

from gestima.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["*"]

# WhiteNoise wants STATIC_ROOT to exist; tests never collect static files into it.
import tempfile  # noqa: E402

STATIC_ROOT = Path(tempfile.mkdtemp(prefix="gestima-test-static-"))  # noqa: F405

# Two test sessions on one PostgreSQL server each get a test database of their own.
if not DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"].setdefault("TEST", {})["NAME"] = (  # noqa: F405
        f"test_{DATABASES['default']['NAME']}_{os.environ['GESTIMA_TEST_REDIS_OWNER']}"  # noqa: F405
    )
