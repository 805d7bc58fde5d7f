"""Settings for Gestima Studio: every value comes from the environment or a `.env` file."""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Safe by default: DEBUG is on only where asked (`./dev run` writes DEBUG=True into .env; tests set it off).
DEBUG = env.bool("DEBUG", default=False)
# Placeholders ever shipped in this repository: a key everyone can read signs nobody's sessions.
_PUBLIC_KEYS = {"", "dev-insecure-key-change-me", "change-me-to-a-long-random-string"}
SECRET_KEY = env("SECRET_KEY", default="")
if SECRET_KEY in _PUBLIC_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set (or is the placeholder from .env.example). Outside development (DEBUG=False) "
            "set a long random SECRET_KEY in the environment or .env, e.g. from "
            '`python -c "import secrets; print(secrets.token_urlsafe(50))"`. '
            "For development, `./dev run` writes one (and DEBUG=True) into .env."
        )
    SECRET_KEY = "dev-insecure-key-change-me"  # DEBUG only: never signs anything in production
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "gestima.admin_site.GestimaAdminConfig",  # django.contrib.admin; its index is the dashboard
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: its `runserver` (TCP_NODELAY, gestima/devserver.py) is the one manage.py finds.
    "gestima",
    "django.contrib.staticfiles",
    "django_rq",
    "axes",
    "csp",
    "curation",
    "finetune",
]

MIDDLEWARE = [
    # First: load-balancer probes come at the machine's address over plain HTTP (docs/deploy.md).
    "gestima.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "gestima.middleware.AdminAddressGuardMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during authentication into the 429 answer.
    "axes.middleware.AxesMiddleware",
]

# --- Password guessing (django-axes) ---
# The lockout backend (django-axes) comes first: a locked-out user or address is refused before any
# password is hashed. It is AxesStandaloneBackend, letting calls without a request (test client login) through.
AUTHENTICATION_BACKENDS = [
    "gestima.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After this many failed logins (admin form or the API's HTTP Basic), the username and, separately, the
# address are locked out for AXES_COOLOFF_TIME; every further try answers 429 at once.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "gestima.lockout.lockout_response"
# The address is REMOTE_ADDR: behind a reverse proxy, have it set REMOTE_ADDR to the client's address.
AXES_VERBOSE = False

# --- Content-Security-Policy (django-csp 4) ---
# Scripts only from our own static files (the admin's and review.js): no inline script runs. Inline
# style attributes stay allowed (the admin and a few status cells use them); images come from our own
# views (staff-only page images) plus data: for the admin's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [SELF],
    },
}

ROOT_URLCONF = "gestima.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "gestima.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    _sqlite = DATABASES["default"].setdefault("OPTIONS", {})
    # Workers and the server write concurrently: wait for the lock instead of failing at once. The wait
    # applies only when a transaction asks for the write lock at BEGIN (IMMEDIATE); a deferred one that
    # upgrades a read lock later gets "database is locked" at once, whatever the timeout.
    _sqlite.setdefault("timeout", 20)
    _sqlite.setdefault("transaction_mode", "IMMEDIATE")
    # WAL: readers never wait for the writer (the review screen stays responsive while a worker writes).
    _sqlite.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "var" / "staticfiles")))
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))
# --- Files: page images, uploads, exports, run files (docs/storage.md) ---
# local: folders under MEDIA_ROOT (EXPORTS_ROOT, RUNS_ROOT), fine for one machine (`./dev run`).
# s3: one S3-compatible bucket (AWS, MinIO, Ceph, R2...) through django-storages; then web, workers and commands
# share only the database, Redis and the bucket. Keys come from the environment only (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, or an instance role): boto3 reads them itself, so no setting here ever holds one.
STORAGE_BACKEND = env("STORAGE_BACKEND", default="local")
if STORAGE_BACKEND not in ("local", "s3"):
    raise ImproperlyConfigured(f"STORAGE_BACKEND={STORAGE_BACKEND!r}: use local or s3 (docs/storage.md).")
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default="") or None
# Objects stay private: downloads go through the admin (staff only), never a public URL.
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True
AWS_S3_FILE_OVERWRITE = False
# Exports stream into the bucket in parts of this size: the memory one export file holds (S3's minimum is 5 MiB).
STORAGE_PART_BYTES = env.int("STORAGE_PART_BYTES", default=8 * 1024 * 1024)
if STORAGE_BACKEND == "s3" and not AWS_STORAGE_BUCKET_NAME:
    raise ImproperlyConfigured("STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME (docs/storage.md).")


def _bucket(location: str) -> dict:
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"location": location}}


# One bucket, three folders: media/ (drawings, page images), exports/ (dataset versions), runs/ (run files).
S3_STORAGES = {"default": _bucket("media"), "exports": _bucket("exports"), "runs": _bucket("runs")}
LOCAL_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},  # MEDIA_ROOT
    "exports": {"BACKEND": "gestima.storage.ExportsFileSystemStorage"},  # EXPORTS_ROOT
    "runs": {"BACKEND": "gestima.storage.RunsFileSystemStorage"},  # RUNS_ROOT
}
STORAGES = {
    **(S3_STORAGES if STORAGE_BACKEND == "s3" else LOCAL_STORAGES),
    "staticfiles": {
        "BACKEND": env(
            "STATICFILES_BACKEND",
            default="django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# Uploads: a drawing above this size is refused before it is stored.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=200)

# Rendering: OpenAI scales every image to fit 2048 px, so rendering larger only costs disk and time.
RENDER_MAX_SIDE_PX = env.int("RENDER_MAX_SIDE_PX", default=2048)
RENDER_DPI_CAP = env.int("RENDER_DPI_CAP", default=300)
RENDER_MAX_PIXELS = env.int("RENDER_MAX_PIXELS", default=2048 * 2048)
RENDER_MAX_PAGES = env.int("RENDER_MAX_PAGES", default=50)
RENDER_MAX_IMAGE_BYTES = env.int("RENDER_MAX_IMAGE_BYTES", default=10 * 1024 * 1024)
# A page whose size at 72 dpi is above this many pixels on a side is refused (the 200 x 200 in case).
RENDER_MAX_PAGE_POINTS = env.int("RENDER_MAX_PAGE_POINTS", default=10_000)
# Address-space cap for the render subprocess, so a hostile PDF cannot take the machine down.
RENDER_MEMORY_LIMIT_MB = env.int("RENDER_MEMORY_LIMIT_MB", default=1024)

# Ground truth: fraction trimmed from each end before averaging machine times.
GROUND_TRUTH_TRIM_FRACTION = env.float("GROUND_TRUTH_TRIM_FRACTION", default=0.1)
GROUND_TRUTH_HIGH_CV = env.float("GROUND_TRUTH_HIGH_CV", default=0.35)

# Review in the admin (issue 3): which JSON tags get a changelist filter, and how many history rows the
# review screen and the change page show (the newest; the full trail stays in ExampleChange).
REVIEW_TAG_FILTERS = env.list("REVIEW_TAG_FILTERS", default=["industry", "machine", "material"])
REVIEW_HISTORY_LIMIT = env.int("REVIEW_HISTORY_LIMIT", default=50)

# Live admin pages (run, eval run, dataset export) ask their JSON endpoint this often while work is under way.
ADMIN_LIVE_POLL_SECONDS = env.float("ADMIN_LIVE_POLL_SECONDS", default=5)

# Examples (issue 3, data side): near-duplicate pages are within this many bits of dHash (of 64). Distinct
# corpus drawings sharing a frame come within 2-4 bits of each other, so only near-identical pages count;
# imported chat lines above this many o200k_base tokens are refused as too long (OpenAI's own cap is 65,536).
NEAR_DUPLICATE_MAX_DISTANCE = env.int("NEAR_DUPLICATE_MAX_DISTANCE", default=1)
EXAMPLES_IMPORT_MAX_TOKENS = env.int("EXAMPLES_IMPORT_MAX_TOKENS", default=16_384)
# JSON targets (every writer: review edit, import, correction, API answers, dataset build): larger or deeper is refused.
TARGET_MAX_BYTES = env.int("TARGET_MAX_BYTES", default=64 * 1024)
TARGET_MAX_DEPTH = env.int("TARGET_MAX_DEPTH", default=20)
# Demo data: the admin's password; empty -> one is generated, printed once and stored nowhere.
DEMO_ADMIN_PASSWORD = env("DEMO_ADMIN_PASSWORD", default="")

# Redis and RQ: ids only are enqueued, after the transaction commits.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# A short connect timeout: when Redis is away the admin says so at once instead of hanging.
_REDIS_KWARGS = {"socket_connect_timeout": 2}
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env.int("RQ_DEFAULT_TIMEOUT", default=600)},
    "render": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env.int("RQ_RENDER_TIMEOUT", default=300)},
    "openai": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env.int("RQ_OPENAI_TIMEOUT", default=3600)},
}
for _queue in RQ_QUEUES.values():
    _queue["REDIS_CLIENT_KWARGS"] = _REDIS_KWARGS
# The worker class recovers jobs whose worker was killed, at start and every JOB_RECOVER_INTERVAL_SECONDS.
# COMMIT_MODE "auto": a queue sends when asked; waiting for the commit is gestima.queues.enqueue_on_commit's
# job alone (its docstring says why the queue must not wait a second time).
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": "gestima.worker.Worker"}
RQ_SHOW_ADMIN_LINK = True
# Health endpoints (gestima/health.py, docs/deploy.md): each check's deadline; the token that opens
# /health/detail (empty: that endpoint answers 404; /health/live and /health/ready need none).
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=2.0)
HEALTH_TOKEN = env("HEALTH_TOKEN", default="")
# How often the scheduler re-enqueues drawings left waiting (e.g. after Redis was away).
RECONCILE_INTERVAL_SECONDS = env.int("RECONCILE_INTERVAL_SECONDS", default=300)

# --- Drawings: render child process and reconciler (issue 2) ---
# The render child is killed after this long; below the render queue's RQ timeout so the row gets the reason.
RENDER_TIMEOUT_SECONDS = env.int("RENDER_TIMEOUT_SECONDS", default=240)
RENDER_JPEG_QUALITY = env.int("RENDER_JPEG_QUALITY", default=85)
# --- Killed workers: leases on the rows a job holds (gestima.leases, gestima.recovery) ---
# A rendering drawing or a running export has a lease the job renews every JOB_HEARTBEAT_SECONDS; a lease
# that runs out means its worker is gone (killed, out of memory). Each worker checks every
# JOB_RECOVER_INTERVAL_SECONDS (and when it starts), so a killed job is noticed within about a minute.
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=30)
JOB_HEARTBEAT_SECONDS = env.float("JOB_HEARTBEAT_SECONDS", default=10)
JOB_RECOVER_INTERVAL_SECONDS = env.float("JOB_RECOVER_INTERVAL_SECONDS", default=30)
# Runs of one job in all (the first and the retries) before the row fails with the reason in words.
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
# --- end drawings ---

# OpenAI / Azure OpenAI. The default provider: openai with OPENAI_API_KEY, else azure with its endpoint and key,
# else the dry-run provider.
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="") or None
# The organisation the key acts for (the SDK's own variable name); part of the account uploaded files belong to.
OPENAI_ORGANIZATION = env("OPENAI_ORG_ID", default="")
AZURE_OPENAI_ENDPOINT = env("AZURE_OPENAI_ENDPOINT", default="")
AZURE_OPENAI_API_KEY = env("AZURE_OPENAI_API_KEY", default="")
AZURE_OPENAI_API_VERSION = env("AZURE_OPENAI_API_VERSION", default="2025-04-01-preview")
# Together AI (a second trainer for vision: Qwen3-VL, Gemma 3, Llama 4). TOGETHER_BASE_URL is for a
# stand-in or a proxy: the SDK's paths start with /v1, so it is the host without /v1.
TOGETHER_API_KEY = env("TOGETHER_API_KEY", default="")
TOGETHER_BASE_URL = env("TOGETHER_BASE_URL", default="") or None
# Azure serves a fine-tuned model only through a deployment. With these set, a succeeded run's deployment is
# created through Azure's management API (ARM); without them, record the name of one made in the portal.
# AZURE_MANAGEMENT_TOKEN is a bearer token (e.g. `az account get-access-token`), read from the environment.
AZURE_SUBSCRIPTION_ID = env("AZURE_SUBSCRIPTION_ID", default="")
AZURE_RESOURCE_GROUP = env("AZURE_RESOURCE_GROUP", default="")
AZURE_OPENAI_ACCOUNT = env("AZURE_OPENAI_ACCOUNT", default="")
AZURE_MANAGEMENT_TOKEN = env("AZURE_MANAGEMENT_TOKEN", default="")
AZURE_MANAGEMENT_URL = env("AZURE_MANAGEMENT_URL", default="https://management.azure.com")
AZURE_MANAGEMENT_API_VERSION = env("AZURE_MANAGEMENT_API_VERSION", default="2024-10-01")
# Hosting price of one fine-tuned deployment per hour in USD (Azure bills it while it exists, used or not).
# Empty: shown as "unknown", never $0.
AZURE_DEPLOYMENT_HOURLY_USD = env("AZURE_DEPLOYMENT_HOURLY_USD", default="")
# How long the deploy job waits for provisioningState Succeeded, polling every AZURE_DEPLOYMENT_POLL_SECONDS.
AZURE_DEPLOYMENT_WAIT_SECONDS = env.int("AZURE_DEPLOYMENT_WAIT_SECONDS", default=1800)
AZURE_DEPLOYMENT_POLL_SECONDS = env.float("AZURE_DEPLOYMENT_POLL_SECONDS", default=15.0)
OPENAI_UPLOAD_PART_THRESHOLD = env.int("OPENAI_UPLOAD_PART_THRESHOLD", default=512 * 1024 * 1024)
OPENAI_UPLOAD_PART_SIZE = env.int("OPENAI_UPLOAD_PART_SIZE", default=64 * 1024 * 1024)
RUN_SYNC_INTERVAL_SECONDS = env.int("RUN_SYNC_INTERVAL_SECONDS", default=60)
EVAL_CONCURRENCY = env.int("EVAL_CONCURRENCY", default=8)
# --- Evaluation, registry, estimates (issue 6) ---
# A running eval run whose worker has not written a result for this long may be resumed (worker died).
EVAL_STALE_SECONDS = env.int("EVAL_STALE_SECONDS", default=300)
# Timeout of one chat call in evaluations and estimates (the SDK's own retries come on top).
EVAL_TIMEOUT_SECONDS = env.float("EVAL_TIMEOUT_SECONDS", default=120.0)
# Live accuracy: how often the periodic job scores estimates whose part's ground truth arrived or changed.
ESTIMATE_SCORE_INTERVAL_SECONDS = env.int("ESTIMATE_SCORE_INTERVAL_SECONDS", default=600)
# Bootstrap resamples for the 95 % confidence intervals (seeded: the same results give the same intervals).
EVAL_BOOTSTRAP_SAMPLES = env.int("EVAL_BOOTSTRAP_SAMPLES", default=1000)
# Few-shot models: reviewed examples shown before each question when no k is given (docs/evaluation.md).
FEW_SHOT_K = env.int("FEW_SHOT_K", default=3)
# --- end evaluation ---
RUNS_ROOT = Path(env("RUNS_ROOT", default=str(MEDIA_ROOT / "runs")))
# The simulated provider (the demo without API keys): trains instantly, answers from the ground truth with seeded
# noise, only for tasks marked demo. Off unless set; `./dev run` sets it when no provider key is configured.
# Its files and job records live under RUNS_ROOT/simulated (shared by the web process and the workers).
SIMULATED_PROVIDER = env.bool("GESTIMA_SIMULATED_PROVIDER", default=False)
# How it finds a drawing's ground truth: a callable returning {page image sha256: DrawingTruth}.
SIMULATED_TRUTH_INDEX = "finetune.selectors.simulated_truth_index"
EXPORTS_ROOT = Path(env("EXPORTS_ROOT", default=str(MEDIA_ROOT / "exports")))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "openai": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Training runs (finetune/services/run_*.py, finetune/providers/openai.py) ------------------------
# The SDK's own retries are off for fine-tuning calls; these drive ours (quota 429s are never retried).
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=60.0)
OPENAI_MAX_ATTEMPTS = env.int("OPENAI_MAX_ATTEMPTS", default=5)
OPENAI_BACKOFF_BASE_SECONDS = env.float("OPENAI_BACKOFF_BASE_SECONDS", default=1.0)
OPENAI_BACKOFF_MAX_SECONDS = env.float("OPENAI_BACKOFF_MAX_SECONDS", default=30.0)
OPENAI_RETRY_AFTER_MAX_SECONDS = env.float("OPENAI_RETRY_AFTER_MAX_SECONDS", default=120.0)
# At most this many remote jobs are scanned when looking a run up by its metadata (and by ft_doctor).
RUN_LOOKUP_MAX_JOBS = env.int("RUN_LOOKUP_MAX_JOBS", default=1000)
# Model lifecycle (curation/services/base_models.py): every page warns this many days before a jobs-end or
# shutdown date (base-model list, launch page, the registry and the admin index for a task's active model).
MODEL_LIFECYCLE_WARNING_DAYS = env.int("MODEL_LIFECYCLE_WARNING_DAYS", default=60)
# Freeze "today" for every lifecycle check ("YYYY-MM-DD"): demos of what happens after a shutdown, tests.
GESTIMA_TODAY = env.str("GESTIMA_TODAY", default="") or None
# Before creating a job the start waits for the provider to import the uploaded files (Azure imports them in
# the background and refuses a job naming a file not yet processed). Bounded: below the openai queue's timeout.
RUN_FILE_IMPORT_TIMEOUT_SECONDS = env.int("RUN_FILE_IMPORT_TIMEOUT_SECONDS", default=900)
RUN_FILE_IMPORT_POLL_SECONDS = env.float("RUN_FILE_IMPORT_POLL_SECONDS", default=5.0)
