"""Settings of the load benchmark's server and set-up: the real settings served over plain HTTP on loopback.

Cookies without the Secure flag (the client talks http://127.0.0.1), and a cheap password hasher: 16
logins must not cost seconds of PBKDF2 before the measured traffic starts (no request measured logs in).
"""

from gestima.settings import *  # noqa: F401,F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
