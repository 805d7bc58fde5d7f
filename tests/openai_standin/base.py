"""The stand-in's HTTP machinery: a threaded server on 127.0.0.1, a route table, and a log of every call.

Route modules (fine_tuning.py, chat.py) register handlers; tests script failures (429, 5xx, quota)
through the state the handlers read. Nothing here patches the SDK: it speaks HTTP like the real API.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, Any]:
        """multipart/form-data fields: str for plain fields, (filename, bytes) for files."""
        content_type = self.headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + self.body)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            fields[name] = (filename, payload) if filename is not None else payload.decode()
        return fields

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, [default])[0]


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON, bytes -> as is, str -> text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[Request], Response | dict | list]


class StandIn:
    """Start with `with StandIn() as api:`; `api.base_url` goes to OPENAI_BASE_URL / base_url=."""

    def __init__(self):
        self.routes: list[tuple[str, re.Pattern, Handler]] = []
        self.calls: list[Request] = []
        self.lock = threading.Lock()
        # Queue of scripted responses per "METHOD /path-regex": consumed before the real handler runs.
        self.scripted: dict[str, list[Response]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Checks every request passes before routing (Azure mode: api-key header, api-version query).
        self.guards: list[Callable[[Request], Response | None]] = []

    # --- routes ------------------------------------------------------------------------------
    def route(self, method: str, pattern: str):
        def register(handler: Handler) -> Handler:
            self.routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))
            return handler

        return register

    def script(self, method: str, path_regex: str, *responses: Response) -> None:
        """The next calls matching get these responses first (e.g. two 429s, then the real handler)."""
        self.scripted.setdefault(f"{method.upper()} {path_regex}", []).extend(responses)

    def calls_to(self, method: str, path_regex: str) -> list[Request]:
        pattern = re.compile(f"^{path_regex}$")
        return [c for c in self.calls if c.method == method.upper() and pattern.match(c.path)]

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.calls.append(request)
            for key, queue in self.scripted.items():
                method, regex = key.split(" ", 1)
                if method == request.method and re.match(f"^{regex}$", request.path) and queue:
                    return queue.pop(0)
        for guard in self.guards:
            refused = guard(request)
            if refused is not None:
                return refused
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if method == request.method and match:
                request.params = match.groupdict()
                result = handler(request)
                return result if isinstance(result, Response) else Response(200, result)
        return Response(
            404,
            {
                "error": {
                    "message": f"no route {request.method} {request.path}",
                    "type": "invalid_request_error",
                    "code": None,
                    "param": None,
                }
            },
        )

    # --- server ------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def root_url(self) -> str:
        """The server without /v1: Azure's endpoint (the SDK adds /openai) and the management API's base."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "StandIn":
        standin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two sends: with Nagle on, the client's delayed ACK adds ~40 ms
            # to every response, which the real API does not.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _handle(self):
                parsed = urlparse(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = parsed.path[3:] if parsed.path.startswith("/v1") else parsed.path
                request = Request(
                    self.command, path, parse_qs(parsed.query), {k.lower(): v for k, v in self.headers.items()}, body
                )
                response = standin._dispatch(request)
                if response.delay:
                    threading.Event().wait(response.delay)
                payload = response.body
                if isinstance(payload, (dict, list)):
                    data, ctype = json.dumps(payload).encode(), "application/json"
                elif isinstance(payload, str):
                    data, ctype = payload.encode(), "text/plain"
                else:
                    data, ctype = payload or b"", "application/octet-stream"
                self.send_response(response.status)
                self.send_header("content-type", response.headers.get("content-type", ctype))
                for key, value in response.headers.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def api_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    type_: str = "invalid_request_error",
    param: str | None = None,
    headers: dict | None = None,
) -> Response:
    """An error body shaped like the real API's."""
    return Response(status, {"error": {"message": message, "type": type_, "code": code, "param": param}}, headers or {})
