"""Gunicorn settings for Gestima Studio's web processes (docs/deploy.md). Gunicorn reads this file from the
working directory by itself: `gunicorn` in the project folder serves `gestima.wsgi`. Every value can be
changed from the environment, so one systemd unit serves every machine.
"""

import os


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


wsgi_app = "gestima.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}").split(",")

# Processes x threads. Threads, because `./dev run` serves through Django's threaded runserver already, and
# a thread that waits on the database or storage leaves the process's other threads serving. Gunicorn's own
# convention names the process count WEB_CONCURRENCY.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = _env_int("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1)
threads = _env_int("GUNICORN_THREADS", 4)
# A worker that stops reporting to the arbiter for this long is killed and replaced. With gthread the
# worker's main loop reports while its threads serve, so this is not a cap on a request's duration
# (dataset builds run in the request for seconds; uploads of 50 MB drawings take as long as the link).
timeout = _env_int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Longer than the load balancer's idle timeout (60 s on most): otherwise the balancer may send a request
# down a connection gunicorn has just closed and answer the user with a 502.
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
# Replace each worker after this many requests (with jitter, so not all at once): bounds slow memory growth.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 100)
# Heartbeat files in memory, not on a disk that may stall (gunicorn's advice for containers and VMs).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Logs to stdout/stderr (journald, docker): the access log with the client's forwarded address and the time
# taken in milliseconds.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
access_log_format = '%(h)s fwd=%({x-forwarded-for}i)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s"'

# HTTPS ends at the load balancer, which must set X-Forwarded-Proto (overwriting the client's). Django reads
# that one header (SECURE_PROXY_SSL_HEADER in gestima/settings.py when DEBUG is off); gunicorn is told the same
# single header, so the two never disagree on whether a request was secure. Gunicorn sets wsgi.url_scheme
# from it only for peers in FORWARDED_ALLOW_IPS (the balancer's addresses); Django trusts the header from any
# peer, so only the balancer may reach this port (docs/deploy.md).
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# PROXY protocol (HAProxy, AWS NLB): REMOTE_ADDR becomes the client's address instead of the balancer's, which
# the login lockout (django-axes, per address) needs. "off", "v1", "v2" or "auto".
proxy_protocol = os.environ.get("GUNICORN_PROXY_PROTOCOL", "off")
proxy_allow_ips = os.environ.get("PROXY_ALLOW_IPS", "127.0.0.1,::1")

# Gunicorn's control socket (gunicornc) defaults to one path per user, which two instances on one machine
# would share: only where asked for.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True
