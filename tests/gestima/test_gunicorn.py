"""Production serving: gunicorn (with the project's gunicorn.conf.py) serves the production settings as a
deploy would set them up (migrate, collectstatic, createsuperuser), behind a pretend load balancer that ends
HTTPS and says so in X-Forwarded-Proto. A real HTTP client logs in to the admin, reads its index and a CSS
file through WhiteNoise, and the balancer's probes are answered at the machine's own address.

The server is another process, so it opens an SQLite file of its own (made by the deploy commands), and the
Redis of this test session.
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = "gestima.example"
PASSWORD = "a-long-password-" + secrets.token_hex(8)
HEALTH_TOKEN = secrets.token_urlsafe(24)
BEHIND_BALANCER = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def _deploy_env(tmp: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "gestima.settings",  # production settings, not the test ones
            "DEBUG": "False",
            "SECURE_SSL_REDIRECT": "True",  # the test settings turn it off in this process's environment
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": HOST,
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "MEDIA_ROOT": str(tmp / "media"),
            "STATIC_ROOT": str(tmp / "static"),
            "HEALTH_TOKEN": HEALTH_TOKEN,
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "2",
            "GUNICORN_ACCESS_LOG": str(tmp / "access.log"),
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        }
    )
    return env


def _manage(env: dict, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gunicorn")
    env = _deploy_env(tmp)
    for step in (
        ["migrate", "--no-input"],
        ["collectstatic", "--no-input"],
        ["createsuperuser", "--no-input", "--username", "admin", "--email", "admin@example.com"],
    ):
        _manage(env, *step)

    # The test binds the port and hands the socket to gunicorn (fd://): no race for a free port, and the
    # test can read the options gunicorn sets on it (one socket, two descriptors).
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    nodelay_before = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    log = open(tmp / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"fd://{listener.fileno()}"],
        cwd=ROOT,
        env=env,
        pass_fds=[listener.fileno()],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not answer:\n" + (tmp / "gunicorn.log").read_text(errors="replace"))
            time.sleep(0.2)
        yield {"url": url, "listener": listener, "nodelay_before": nodelay_before, "tmp": tmp}
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the arbiter and its workers
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        listener.close()


def _cookies(response: httpx.Response) -> dict:
    jar = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return {name: morsel for name, morsel in jar.items()}


def _cookie_header(cookies: dict) -> str:
    return "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())


def test_an_admin_logs_in_through_gunicorn_and_reads_the_index_and_its_stylesheet(served):
    with httpx.Client(base_url=served["url"], headers=BEHIND_BALANCER, timeout=20) as client:
        page = client.get("/admin/login/?next=/admin/")
        assert page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        cookies = _cookies(page)
        assert cookies["csrftoken"]["secure"]  # HTTPS as the balancer said: the cookie never goes over plain HTTP

        # A browser posting the form sends its Origin and Referer: Django's CSRF check on HTTPS compares them.
        login = client.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token,
                "username": "admin",
                "password": PASSWORD,
                "next": "/admin/",
            },
            headers={
                "Cookie": _cookie_header(cookies),
                "Origin": f"https://{HOST}",
                "Referer": f"https://{HOST}/admin/login/?next=/admin/",
            },
        )
        assert login.status_code == 302, login.text[:2000]
        assert login.headers["location"] == "/admin/"
        cookies.update(_cookies(login))
        assert cookies["sessionid"]["secure"] and cookies["sessionid"]["httponly"]

        index = client.get("/admin/", headers={"Cookie": _cookie_header(cookies)})
        assert index.status_code == 200
        assert "Curate data, train and evaluate models" in index.text
        assert "admin" in re.search(r'<div id="user-tools">(.*?)</div>', index.text, re.S).group(1)

        # The stylesheet the page links: its hashed name from collectstatic's manifest, served by WhiteNoise.
        css_path = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', index.text).group(1)
        css = client.get(css_path, headers={"Accept-Encoding": "gzip"})
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers["content-encoding"] == "gzip"  # the compressed copy collectstatic made
        assert "immutable" in css.headers["cache-control"]  # browsers keep it until its name changes
        assert "body" in css.text and "{" in css.text

    access_log = (served["tmp"] / "access.log").read_text()
    assert re.search(r'fwd=203\.0\.113\.7 .*"POST /admin/login/\?next=/admin/ HTTP/1\.1" 302 ', access_log)
    assert re.search(rf'"GET {re.escape(css_path)} HTTP/1\.1" 200 ', access_log)


def test_a_request_the_balancer_did_not_mark_https_is_redirected_to_https(served):
    response = httpx.get(f"{served['url']}/admin/login/", headers={"Host": HOST})
    assert response.status_code == 301
    assert response.headers["location"] == f"https://{HOST}/admin/login/"


def test_gunicorn_turns_off_nagle_on_its_socket(served):
    # Gunicorn writes the headers and the body of an answer separately; with Nagle on, the body waits for the
    # client's delayed ACK (about 40 ms on Linux). gunicorn/sock.py sets TCP_NODELAY on the listening
    # socket, and Linux passes it to every connection accepted from it.
    assert served["nodelay_before"] == 0
    assert served["listener"].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_the_balancer_probes_are_answered_at_the_machine_address_over_plain_http(served):
    url = served["url"]
    # The Host is the machine's address (not in ALLOWED_HOSTS) and nothing says HTTPS, as balancers probe.
    assert httpx.get(f"{url}/admin/login/").status_code == 400  # the rest of the site still refuses that host
    live = httpx.get(f"{url}/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert live.headers["cache-control"] == "no-store"
    ready = httpx.get(f"{url}/health/ready")
    assert ready.status_code == 200, ready.text
    assert {name: check["ok"] for name, check in ready.json()["checks"].items()} == {
        "database": True,
        "redis": True,
        "storage": True,
    }

    assert httpx.get(f"{url}/health/detail").status_code == 401
    detail = httpx.get(f"{url}/health/detail", headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert detail.status_code == 200, detail.text
    assert set(detail.json()["checks"]["queues"]["queues"]) == {"default", "render", "openai"}
