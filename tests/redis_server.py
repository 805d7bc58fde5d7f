"""A Redis of this test session's own, so two test runs on one machine never flush each other's jobs.

`session_redis_url()` starts `redis-server` on a free loopback port (no persistence) and stops it when the
session's process exits. Child processes (a worker started by a test, a benchmark) inherit the URL through
the environment and use the same server. Without `redis-server`, a database of a Redis that answers at
`TEST_REDIS_URL` is reserved with a lock key instead, so concurrent runs still get different databases.
"""

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis

OWNER_ENV = "GESTIMA_TEST_REDIS_OWNER"
_RESERVE_KEY = "gestima:test-session:db:{}"
_RESERVE_SECONDS = 6 * 3600


class RedisUnavailable(Exception):
    """Neither a redis-server to start nor a Redis that answers: the tests cannot run."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server() -> str:
    workdir = tempfile.mkdtemp(prefix="gestima-test-redis-")
    port = _free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            os.path.join(workdir, "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    owner = os.getpid()

    def stop():
        if os.getpid() != owner:  # a forked child exiting must not stop the session's server
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RedisUnavailable(f"redis-server exited at start (log: {workdir}/redis.log)")
        try:
            client.ping()
            return url
        except redis.RedisError:
            time.sleep(0.05)
    stop()
    raise RedisUnavailable("redis-server did not answer within 10 s")


def _reserve_database(base_url: str) -> str:
    """Take the first database (1-15) no other session holds; the lock is released at exit."""
    base = base_url.rsplit("/", 1)[0] if base_url.count("/") > 2 else base_url
    probe = redis.Redis.from_url(f"{base}/0", socket_connect_timeout=2)
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise RedisUnavailable(f"no redis-server to start and Redis does not answer at {base} ({exc})") from exc
    token = f"{os.getpid()}@{socket.gethostname()}"
    for number in range(15, 0, -1):
        key = _RESERVE_KEY.format(number)
        if probe.set(key, token, nx=True, ex=_RESERVE_SECONDS):
            atexit.register(lambda k=key: probe.delete(k) if probe.get(k) == token.encode() else None)
            return f"{base}/{number}"
    raise RedisUnavailable(f"all test databases of {base} are held by other test sessions")


def session_redis_url() -> str:
    """The Redis URL this test session owns (started or reserved once, inherited by child processes)."""
    if os.environ.get(OWNER_ENV) and os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if shutil.which("redis-server"):
        url = _start_server()
    else:
        url = _reserve_database(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379"))
    os.environ["REDIS_URL"] = url
    os.environ[OWNER_ENV] = str(os.getpid())
    return url
