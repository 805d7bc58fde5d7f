"""Test settings: the real settings, with a Redis database of the tests' own and fast hashing."""
import os

# Tests flush their Redis database: never the one the running app uses.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DEBUG", "False")
os.environ.setdefault("SECURE_SSL_REDIRECT", "False")

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
