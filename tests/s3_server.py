"""An S3-compatible server of this test session's own: moto's server mode, a real HTTP endpoint, in a child process.

`session_s3_endpoint()` starts `python -m moto.server` on a free loopback port once per session and stops it
when the session's process exits, like `tests/redis_server.py` does for Redis. boto3 talks to it over HTTP
exactly as it would to AWS or MinIO: nothing in boto3 is patched. None when moto is not installed.
"""

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

# Real S3 refuses multipart parts under 5 MiB (but the last); this moto knob lowers the floor, so a test
# export of a few hundred KB still goes up in several parts.
PART_MIN_BYTES = 16 * 1024
_endpoint: str | None = None


def moto_installed() -> bool:
    return importlib.util.find_spec("moto") is not None and importlib.util.find_spec("flask") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_s3_endpoint() -> str | None:
    """The endpoint URL of the session's S3 server (started on first use), or None without moto."""
    global _endpoint
    if _endpoint is not None or not moto_installed():
        return _endpoint
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="gestima-test-s3-", suffix=".log", delete=False)
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(PART_MIN_BYTES)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
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
        os.unlink(log.name)

    atexit.register(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited at start (log: {log.name})")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=0.5).close()
            _endpoint = url
            return url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {url} within 30 s (log: {log.name})")
