"""Benchmark: concurrent users against a real server process, on SQLite and on PostgreSQL.

Each database is a throwaway one (an SQLite file; a PostgreSQL database created and dropped here) with
2,000 pending examples and a few rendered drawings; a real server (`manage.py runserver --noreload`, a
thread per request) serves it and the OpenAI API is the tests' local stand-in. First one user, then
`--concurrency` users run the same mix: example changelist, review page, approve (each example once, from
the review page's form), API estimate (JSON, session + CSRF header). Goals: zero errors (a 5xx, a timeout,
a refused connection, an answer that is neither the expected one nor a clear 4xx) and nothing lost (every
approve answered with its redirect is approved in the database). The p95 latency under load is printed
beside the single-user latency measured in the same run.

    .venv/bin/python benchmarks/load.py [--databases sqlite,postgres] [--seconds 40] [--single-seconds 10]
                                        [--concurrency 16] [--postgres postgres://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _server import free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = "benchmarks._load_settings"
PASSWORD = "bench-Load-1"
PENDING = 2000
MIX = (("changelist", 3), ("review", 3), ("approve", 3), ("estimate", 1))
EXPECTED = {"changelist": 200, "review": 200, "approve": 302, "estimate": 201}
REQUEST_TIMEOUT = 30.0


# --- child side: one database, its server and its clients --------------------------------------


def _postgres_create(url: str) -> tuple[str, str]:
    """(url of a new throwaway database on the server of `url`, its name)."""
    import psycopg

    name = f"gestima_load_{os.getpid()}_{random.randrange(1 << 20):05x}"
    admin_url = re.sub(r"/[^/]*$", "/postgres", url)
    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/]*$", f"/{name}", url), name


def _postgres_drop(url: str, name: str) -> None:
    import psycopg

    admin_url = re.sub(r"/[^/]*$", "/postgres", url)
    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seed(users: int) -> dict:
    """Tables, roles, managers, the task with an active model, drawings with real page images, examples."""
    from django.contrib.auth.models import Group, User

    from _seed import examples_create, tables_create
    from curation.services.tasks import task_create_from_preset
    from finetune.models import ModelVersion
    from tests.factories import make_base_model, make_drawing

    tables_create()
    task = task_create_from_preset(slug="technology_builder")
    managers = Group.objects.get(name="Manager")
    names = []
    for i in range(users):
        user = User.objects.create_user(f"manager{i}", password=PASSWORD, is_staff=True)
        user.groups.add(managers)
        names.append(user.username)
    make_base_model()
    ModelVersion.objects.create(
        task=task,
        model_name="gpt-4o-mini-2024-07-18",
        provider="openai",
        kind="base",
        prompt_text=task.compact_prompt,
        is_active=True,
        override_reason="load benchmark",
    )
    estimate_drawings = [make_drawing(part_number=f"EST-{i}").pk for i in range(4)]
    examples = examples_create(
        task=task,
        numbers=range(PENDING),
        prefix="L",
        fields=lambda n, drawing: {
            "status": "pending",
            "tags": {"industry": "automotive", "machine": ["NZX 2000"], "material": "C45"},
        },
        batch_size=1000,
    )
    return {"users": names, "examples": [e.pk for e in examples], "drawings": estimate_drawings}


class Client:
    """One user's browser: a session cookie, the CSRF token, timed requests."""

    def __init__(self, base: str, username: str):
        import httpx

        self.http = httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT, follow_redirects=False)
        page = self.http.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = self.http.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD, "next": "/admin/"},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"login of {username} answered {answer.status_code}")
        self.csrf = self.http.cookies["csrftoken"]

    def call(self, op: str, target) -> tuple[int | str, float]:
        started = time.perf_counter()
        try:
            if op == "changelist":
                answer = self.http.get("/admin/curation/example/", params={"status__exact": "pending"})
            elif op == "review":
                answer = self.http.get(f"/admin/curation/example/{target}/review/")
            elif op == "approve":
                answer = self.http.post(
                    f"/admin/curation/example/{target}/review/",
                    data={"csrfmiddlewaretoken": self.csrf, "decision": "approve", "expected_status": "pending"},
                )
            else:
                answer = self.http.post(
                    "/api/estimates", json={"drawing_id": target}, headers={"X-CSRFToken": self.csrf}
                )
            status: int | str = answer.status_code
        except Exception as exc:  # noqa: BLE001 - a timeout or a refused connection is an error to count
            status = type(exc).__name__
        return status, (time.perf_counter() - started) * 1000


def _traffic(clients: list[Client], seconds: float, data: dict, pool: queue.Queue, seed: int) -> list[dict]:
    """Every client in its own thread runs the mix until the deadline; returns one record per request."""
    records, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds
    ops = [op for op, weight in MIX for _ in range(weight)]

    def run(client: Client, rng: random.Random):
        while time.monotonic() < deadline:
            op = rng.choice(ops)
            if op == "approve":
                try:
                    target = pool.get_nowait()
                except queue.Empty:
                    op, target = "review", rng.choice(data["examples"])
            elif op == "review":
                target = rng.choice(data["examples"])
            elif op == "estimate":
                target = rng.choice(data["drawings"])
            else:
                target = None
            status, ms = client.call(op, target)
            with lock:
                records.append({"op": op, "target": target, "status": status, "ms": ms, "user": client.user})

    threads = [threading.Thread(target=run, args=(c, random.Random(seed + i))) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT + 10)
    return records


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def child(kind: str, args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"gestima-bench-load-{kind}-"))
    pg_name = None
    if kind == "postgres":
        db_url, pg_name = _postgres_create(args.postgres)
    else:
        db_url = f"sqlite:///{workdir / 'load.sqlite3'}"
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": db_url,
        "MEDIA_ROOT": str(workdir / "media"),
        "DEBUG": "False",
        "LOG_LEVEL": "ERROR",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "benchmark-only-key-" + "b" * 40,
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    server = None
    try:
        import django

        django.setup()
        from django.db import connection

        from curation.models import Example
        from tests.factories import technology_target
        from tests.openai_standin import StandIn
        from tests.openai_standin.chat import install_chat, part_number

        data = _seed(users=min(args.concurrency, 8))
        connection.close()
        with StandIn() as api:
            install_chat(api, lambda body: json.dumps(technology_target(part_number(body) or "EST-0")))
            port = free_port()
            server_env = {**os.environ, "OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": api.base_url}
            server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=server_env,
                stdout=subprocess.DEVNULL,
                stderr=open(workdir / "server.log", "wb"),
            )
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, server)
            pool: queue.Queue = queue.Queue()
            for pk in data["examples"]:
                pool.put(pk)
            first = _client(base, data["users"][0])
            # Warm-up, not measured: the first request of each kind pays imports, template loading, the SDK.
            for op in ("changelist", "review", "estimate"):
                first.call(op, data["drawings"][0] if op == "estimate" else data["examples"][-1])
            single = _traffic([first], args.single_seconds, data, pool, seed=1)
            clients = [_client(base, data["users"][i % len(data["users"])]) for i in range(args.concurrency)]
            loaded = _traffic(clients, args.seconds, data, pool, seed=100)
        server.terminate()
        server.wait(timeout=10)
        server = None
        # Nothing lost: every approve answered with its redirect is approved, by the user who sent it.
        approved = dict(Example.objects.filter(status="approved").values_list("pk", "reviewer__username"))
        records = single + loaded
        ok_approves = [r for r in records if r["op"] == "approve" and r["status"] == 302]
        lost = [r["target"] for r in ok_approves if approved.get(r["target"]) != r["user"]]
        other_approves = [r for r in records if r["op"] == "approve" and r["status"] != 302]
        silently_done = [r["target"] for r in other_approves if r["target"] in approved]
        errors = [
            r
            for r in records
            if r["status"] != EXPECTED[r["op"]] and not (isinstance(r["status"], int) and 400 <= r["status"] < 500)
        ]
        server_log = (workdir / "server.log").read_text(errors="replace")
        return {
            "kind": kind,
            "requests_single": len(single),
            "requests_load": len(loaded),
            "seconds": args.seconds,
            "single_seconds": args.single_seconds,
            "concurrency": args.concurrency,
            "approved_ok": len(ok_approves),
            "lost": lost,
            "refused_4xx": len(
                [r for r in other_approves if isinstance(r["status"], int) and 400 <= r["status"] < 500]
            ),
            "approved_though_error": silently_done,
            "errors": [{"op": r["op"], "status": r["status"]} for r in errors],
            "error_kinds": _error_kinds(server_log),
            "latency": {
                op: {
                    "single": [r["ms"] for r in single if r["op"] == op],
                    "load": [r["ms"] for r in loaded if r["op"] == op],
                }
                for op, _ in MIX
            },
        }
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if pg_name:
            _postgres_drop(args.postgres, pg_name)
        shutil.rmtree(workdir, ignore_errors=True)


def _client(base: str, username: str) -> Client:
    client = Client(base, username)
    client.user = username
    return client


def _error_kinds(log: str) -> dict[str, int]:
    """The last line of each traceback in the server's log, counted (e.g. `OperationalError: database is locked`)."""
    kinds: dict[str, int] = {}
    for match in re.finditer(r"^(\w+(?:\.\w+)*(?:Error|Exception)[^\n]*)$", log, re.M):
        line = match.group(1)[:120]
        kinds[line] = kinds.get(line, 0) + 1
    return kinds


# --- parent side ---------------------------------------------------------------------------------


def report(result: dict) -> bool:
    kind = result["kind"]
    print(
        f"  {kind}: {result['requests_single']} requests by 1 user in {result['single_seconds']} s, "
        f"{result['requests_load']} by {result['concurrency']} users in {result['seconds']} s "
        f"({result['requests_load'] / result['seconds']:.1f}/s)"
    )
    all_single, all_load = [], []
    for op, lat in result["latency"].items():
        all_single += lat["single"]
        all_load += lat["load"]
        print(
            f"    {op:<10} 1 user: median {_p(lat['single'], 0.5):6.0f} ms, p95 {_p(lat['single'], 0.95):6.0f} ms"
            f" | {result['concurrency']} users: median {_p(lat['load'], 0.5):6.0f} ms, p95 "
            f"{_p(lat['load'], 0.95):6.0f} ms"
            f" ({len(lat['load'])} requests)"
        )
    errors = result["errors"]
    by_kind: dict[str, int] = {}
    for error in errors:
        key = f"{error['op']} {error['status']}"
        by_kind[key] = by_kind.get(key, 0) + 1
    print(
        f"    approves answered with their redirect: {result['approved_ok']}, lost: {len(result['lost'])}, "
        f"answered 4xx: {result['refused_4xx']}, approved although the answer was an error: "
        f"{len(result['approved_though_error'])}"
    )
    if errors:
        print(f"    errors: {', '.join(f'{k} ×{n}' for k, n in sorted(by_kind.items()))}")
        for line, count in sorted(result["error_kinds"].items(), key=lambda item: -item[1])[:5]:
            print(f"      server: {line} ×{count}")
    ok = not errors and not result["lost"]
    result["summary"] = (
        f"{kind} {'pass' if ok else 'FAIL'} ({len(errors)} errors, {len(result['lost'])} lost, "
        f"p95 {_p(all_load, 0.95):.0f} ms at {result['concurrency']} users, "
        f"1 user {_p(all_single, 0.95):.0f} ms)"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=40, help="load phase (the single-user phase comes first)")
    parser.add_argument("--single-seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--postgres", default=os.environ.get("LOAD_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seconds + args.single_seconds > 60:
        parser.error("a load run is at most 60 s of traffic (--seconds + --single-seconds)")

    if args.child:
        print(json.dumps(child(args.child, args)))
        return 0

    results, passed = [], True
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        command = [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--seconds",
            str(args.seconds),
            "--single-seconds",
            str(args.single_seconds),
            "--concurrency",
            str(args.concurrency),
            "--postgres",
            args.postgres,
        ]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=args.seconds + 300)
        if done.returncode != 0:
            print(f"  {kind}: the run failed:\n{done.stderr[-2000:]}")
            results.append({"summary": f"{kind} FAIL (did not run)"})
            passed = False
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        passed = report(result) and passed
        results.append(result)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"  load average {load:.1f} on {os.cpu_count()} cores; server: runserver --noreload (a thread per request)")
    print(f"load: {'; '.join(r['summary'] for r in results)} {'pass' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
