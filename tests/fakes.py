"""Stand-ins a test starts on 127.0.0.1 and scripts itself, unlike the sandbox: an upstream that
speaks TikAPI's or Zyte's wire protocol with answers the test chooses, and an SQS endpoint
that passes every call through to the embedded AWS except those the test makes it refuse; and
an in-memory DynamoDB table for simulations of thousands of rate-budget calls."""

from __future__ import annotations

import copy
import http.client
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3


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


# What a proxied call becomes: passed through (None), refused with the service's own "access
# denied" error (which no SDK retries), or the death of the calling process ("die": the proxy
# calls `on_die`, then drops the connection without an answer).
Verdict = str | None
# The service's refusal: status, content type, body, and headers.
_REFUSALS: dict[str, tuple[int, str, bytes, dict[str, str]]] = {
    "sqs": (
        400,
        "application/x-amz-json-1.0",
        json.dumps(
            {
                "__type": "com.amazonaws.sqs#KmsAccessDenied",
                "message": "The caller does not have access to the KMS key.",
            }
        ).encode(),
        {"x-amzn-query-error": "KMS.AccessDeniedException;Sender"},
    ),
    "s3": (
        403,
        "application/xml",
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied (injected)</Message></Error>",
        {},
    ),
    "dynamodb": (
        400,
        "application/x-amz-json-1.0",
        json.dumps(
            {
                "__type": "com.amazon.coral.service#AccessDeniedException",
                "message": "Access denied (injected)",
            }
        ).encode(),
        {},
    ),
}


@dataclass
class ProxiedCall:
    service: str  # from the request's SigV4 credential scope: s3, sqs, dynamodb, lambda, ...
    operation: str  # X-Amz-Target's (SQS, DynamoDB), else "<METHOD> <path>"
    body: bytes


class FaultyAws(_Server):
    """An AWS endpoint in front of the embedded one, for the calls of one function's environment
    (its AWS_ENDPOINT_URL): every call goes through, except where `decide(call)` says otherwise.
    Calls to Lambda's API go to `lambda_upstream` (the local stand-in), the rest to `upstream`.
    `on_answer(call, status, body)` sees every answer that went through."""

    def __init__(
        self,
        upstream: str,
        decide: Callable[[ProxiedCall], Verdict],
        lambda_upstream: str | None = None,
        on_die: Callable[[], None] | None = None,
        on_answer: Callable[[ProxiedCall, int, bytes], None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.lambda_upstream = lambda_upstream
        self.decide = decide
        self.on_die = on_die or (lambda: None)
        self.on_answer = on_answer or (lambda call, status, body: None)
        self.refused = 0
        super().__init__(_FaultyHandler)

    def __enter__(self) -> FaultyAws:
        super().__enter__()
        return self


class _FaultyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
        # client's delayed ACK of the first (40 ms on Linux) on every call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        owner: FaultyAws = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        scope = self.headers.get("Authorization", "").split("Credential=", 1)[-1].split("/")
        service = scope[3] if len(scope) > 3 else ""
        target = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        call = ProxiedCall(service, target or f"{self.command} {urlsplit(self.path).path}", body)
        verdict = owner.decide(call)
        if verdict == "die":
            owner.on_die()
            self.close_connection = True
            self.connection.close()
            return
        if verdict == "refuse":
            owner.refused += 1
            status, content_type, payload, headers = _REFUSALS[service]
            return self._answer(status, payload, {"Content-Type": content_type, **headers})
        upstream = urlsplit(
            owner.lambda_upstream if service == "lambda" and owner.lambda_upstream else owner.upstream
        )
        connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "transfer-encoding")
        }
        connection.request(self.command, self.path, body, headers)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        owner.on_answer(call, response.status, payload)
        kept = {
            name: value
            for name, value in response.getheaders()
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date")
        }
        self._answer(response.status, payload, kept, head=self.command == "HEAD")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, payload: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class MemoryDynamoDB:
    """The two calls the rate budget (workers/ratelimit.py) makes, GetItem and PutItem, on a dict
    in this process: a simulated five minutes of takes are thousands of calls, seconds' worth
    against the embedded DynamoDB. PutItem checks the two conditions the budget writes with,
    `attribute_not_exists(pk)` and `<attribute> = :value`, as DynamoDB does: one that does not
    hold raises botocore's ConditionalCheckFailedException and writes nothing. Any other
    condition is an error, so the fake cannot quietly accept a write DynamoDB would judge."""

    def __init__(self) -> None:
        # botocore's exception classes for DynamoDB's errors (building a client calls nothing).
        self.exceptions = boto3.session.Session().client("dynamodb", region_name="us-east-1").exceptions
        self._items: dict[tuple[str, str, str], dict[str, Any]] = {}
        # Called once, just before the next PutItem is judged: another writer's turn.
        self.before_next_put: Callable[[], None] | None = None

    def get_item(
        self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False
    ) -> dict[str, Any]:
        item = self._items.get(_row_key(TableName, Key))
        return {} if item is None else {"Item": copy.deepcopy(item)}

    def put_item(
        self,
        *,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str | None = None,
        ExpressionAttributeValues: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self.before_next_put is not None:
            hook, self.before_next_put = self.before_next_put, None
            hook()
        key = _row_key(TableName, Item)
        if ConditionExpression is not None and not _holds(
            ConditionExpression, self._items.get(key), ExpressionAttributeValues or {}
        ):
            error = {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}
            raise self.exceptions.ConditionalCheckFailedException({"Error": error}, "PutItem")
        self._items[key] = copy.deepcopy(Item)
        return {}


def _row_key(table: str, item: dict[str, Any]) -> tuple[str, str, str]:
    return table, item["pk"]["S"], item["sk"]["S"]


def _holds(condition: str, item: dict[str, Any] | None, values: dict[str, Any]) -> bool:
    if found := re.fullmatch(r"attribute_not_exists\((\w+)\)", condition):
        return item is None or found[1] not in item
    if found := re.fullmatch(r"(\w+) = (:\w+)", condition):
        return item is not None and _same(item.get(found[1]), values[found[2]])
    raise NotImplementedError(f"MemoryDynamoDB does not judge the condition {condition!r}")


def _same(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """DynamoDB's equality: a number by value ("1.0" = "1"), anything else by type and value."""
    if stored is not None and "N" in stored and "N" in wanted:
        return Decimal(stored["N"]) == Decimal(wanted["N"])
    return stored == wanted
