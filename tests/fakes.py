"""Stand-ins a test starts on 127.0.0.1 and scripts itself, unlike the sandbox: an upstream that
speaks TikAPI's or Zyte's wire protocol with answers the test chooses, and an SQS endpoint
that passes every call through to the embedded AWS except those the test makes it refuse."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes | dict[str, Any] | list[Any] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


def html(status: int, text: str = "Not Found") -> Answer:
    """An error page such as a web server or a proxy sends: not the API's answer at all."""
    page = f"<html><head><title>{status} {text}</title></head><body><h1>{text}</h1></body></html>"
    return Answer(status, page.encode(), "text/html; charset=utf-8")


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> _Server:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class ScriptedUpstream(_Server):
    """Answers every request with `answer(request)`, and keeps the requests it was sent."""

    def __init__(self, answer: Callable[[Request], Answer]) -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        super().__init__(_ScriptedHandler)

    def __enter__(self) -> ScriptedUpstream:
        super().__enter__()
        return self

    def record(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
        return self.answer(request)


class _ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command,
            parts.path,
            {k: v[0] for k, v in parse_qs(parts.query).items()},
            {k.lower(): v for k, v in self.headers.items()},
            self.rfile.read(length) if length else b"",
        )
        answer = self.server.owner.record(request)  # type: ignore[attr-defined]
        payload = answer.payload()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle


class RefusingSqs(_Server):
    """An SQS endpoint in front of the embedded AWS: every call goes through, except the
    operations in `refuse`, answered with SQS's own error for a key the caller may not use."""

    ERROR: ClassVar[dict[str, str]] = {
        "__type": "com.amazonaws.sqs#KmsAccessDenied",
        "message": "The caller does not have access to the KMS key.",
    }

    def __init__(self, upstream: str, refuse: set[str]) -> None:
        self.upstream = urlsplit(upstream)
        self.refuse = refuse
        self.refused = 0
        super().__init__(_ProxyHandler)

    def target(self, upstream: str) -> None:
        """Where calls go through to (known once the embedded AWS has started)."""
        self.upstream = urlsplit(upstream)

    def __enter__(self) -> RefusingSqs:
        super().__enter__()
        return self


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        owner: RefusingSqs = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        if operation in owner.refuse:
            owner.refused += 1
            payload = json.dumps(RefusingSqs.ERROR).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("x-amzn-query-error", "KMS.AccessDeniedException;Sender")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        connection = http.client.HTTPConnection(
            owner.upstream.hostname or "127.0.0.1", owner.upstream.port, timeout=30
        )
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        connection.request("POST", self.path, body, headers)
        response = connection.getresponse()
        payload = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        connection.close()
