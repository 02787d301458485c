"""A small real-HTTP server on loopback for platform fakes, with fault injection.

Each platform fake (tests/fakes/<platform>.py) registers routes on a :class:`FakeHTTPServer`
and keeps its own state; adapters under test talk to it over real sockets through httpx,
exactly as they would talk to the platform. Faults (a status with the platform's own
headers and body, a hang, a dropped connection, a malformed body) are queued with
:meth:`FakeHTTPServer.inject` and consumed by the next matching requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class FakeResponse:
    status: int = 200
    body: Any = None  # bytes/str sent as-is; anything else JSON-encoded
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        if self.body is None and self.status == 204:
            return b"", "text/plain"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


@dataclass
class Fault:
    """What to do instead of the real handler for one matching request."""

    response: FakeResponse | None = None  # answer this instead
    hang_s: float = 0.0  # sleep this long first (a timeout, when longer than the client's)
    drop: bool = False  # close the connection without an answer
    then_handle: bool = False  # after hanging, run the real handler anyway


Handler = Callable[[FakeRequest], FakeResponse]


class FakeHTTPServer:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._faults: list[tuple[Callable[[FakeRequest], bool], Fault]] = []
        self._lock = threading.Lock()
        self.requests: list[FakeRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routes and faults -------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register ``handler`` for ``method`` and a full-match path regex (named groups)."""

        def register(handler: Handler) -> Handler:
            self._routes.append((method.upper(), re.compile(pattern), handler))
            return handler

        return register

    def inject(self, fault: Fault, *, times: int = 1,
               when: Callable[[FakeRequest], bool] | None = None) -> None:
        with self._lock:
            for _ in range(times):
                self._faults.append((when or (lambda _r: True), fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, req: FakeRequest) -> Fault | None:
        with self._lock:
            for i, (when, fault) in enumerate(self._faults):
                if when(req):
                    del self._faults[i]
                    return fault
        return None

    def calls(self, method: str, path_pattern: str) -> list[FakeRequest]:
        rx = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method and rx.fullmatch(r.path)]

    # -- dispatch ----------------------------------------------------------------------
    def dispatch(self, req: FakeRequest) -> FakeResponse:
        for method, rx, handler in self._routes:
            if method != req.method:
                continue
            m = rx.fullmatch(req.path)
            if m:
                req.params = m.groupdict()
                return handler(req)
        return FakeResponse(404, {"error": "Not found"})

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHTTPServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

            def _handle(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = FakeRequest(
                    method=self.command,
                    path=split.path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with fake._lock:
                    fake.requests.append(req)
                fault = fake._take_fault(req)
                if fault is not None:
                    if fault.hang_s:
                        time.sleep(fault.hang_s)
                    if fault.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.response is not None:
                        return self._send(fault.response)
                    if not fault.then_handle:
                        return self._send(FakeResponse(500, {"error": "injected"}))
                try:
                    resp = fake.dispatch(req)
                except Exception as exc:  # a bug in a fake must show up in the test
                    resp = FakeResponse(599, {"fake_error": repr(exc)})
                self._send(resp)

            def _send(self, resp: FakeResponse) -> None:
                payload, ctype = resp.encode()
                self.send_response(resp.status)
                headers = {"Content-Type": ctype, **resp.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
