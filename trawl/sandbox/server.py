"""The sandbox's HTTP server: routes TikAPI's and Zyte's paths to their answers, applies the
rate limits, injected faults and latency, and serves the control paths (/_sandbox/faults,
/_sandbox/stats).

The limits' sliding windows live here, beside the faults rather than in them, so changing the
faults at run time (`trawl faults`) keeps the last minute's traffic counted, as a real upstream
would. Their clock is injectable, so a test can slide a window without waiting a minute."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.normalise import product_platform
from trawl.sandbox.common import JSON, Api, Reply, phrase
from trawl.sandbox.faults import (
    CALL_LOG_SIZE,
    DEFAULT_SLOW_MS,
    Call,
    Faults,
    Limiter,
    fault_reply,
    limit_reply,
)
from trawl.sandbox.tikapi import (
    cadence_s,
    decode_sec_uid,
    first_older,
    tikapi_check,
    tikapi_error,
    tikapi_posts,
    video_count,
)
from trawl.sandbox.zyte import problem, zyte_extract, zyte_key_ok

# --------------------------------------------------------------------------- faults


# --------------------------------------------------------------------------- deterministic helpers


# --------------------------------------------------------------------------- TikAPI


# --------------------------------------------------------------------------- Zyte


# --------------------------------------------------------------------------- fault answers


# --------------------------------------------------------------------------- HTTP server


class _FaultsUpdate(BaseModel):
    """Body of `POST /_sandbox/faults`; omitted fields reset to no faults, no limits, no latency,
    same seed. The limits' windows are kept either way."""

    model_config = ConfigDict(extra="forbid")
    faults: str = ""
    latency_ms: int = Field(default=0, ge=0)
    seed: int | None = None
    slow_ms: int = Field(default=DEFAULT_SLOW_MS, ge=0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is closed, so its thread does not wait forever
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per request would drown the CLI's own output

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; on a kept-alive connection Nagle's algorithm
        # would hold the body until the client's delayed ACK, some 40 ms on top of the latency
        # asked for.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sandbox._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, open_=False)

    def do_GET(self) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/_sandbox/faults":
            self._send(Reply(200, sandbox._faults_body()))
        elif parts.path == "/_sandbox/stats":
            self._send(Reply(200, dict(sandbox.stats)))
        elif parts.path == "/public/check":
            target = params.get("username") or params.get("user_id", "")
            self._upstream("tikapi", target, self.headers.get("X-API-KEY", ""), lambda: self._check(params))
        elif parts.path == "/public/posts":
            target = f"{params.get('secUid', '')}:{params.get('cursor', '')}"
            self._upstream("tikapi", target, self.headers.get("X-API-KEY", ""), lambda: self._posts(params))
        else:
            self._send(tikapi_error(404, "Not found"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        if path == "/_sandbox/faults":
            self._send(self.server.sandbox._control(raw))
        elif path == "/v1/extract":
            query = _json_or_none(raw)
            target = str(query.get("url", "")) if isinstance(query, dict) else ""
            key = _basic_user(self.headers.get("Authorization"))
            self._upstream("zyte", target, key, lambda: self._extract(query), _platform(target))
        else:
            self._send(problem(404, "about:blank", "Not Found", f"No endpoint at {path}."))

    def _check(self, params: Mapping[str, str]) -> Reply:
        if not self._tikapi_key_ok():
            return tikapi_error(403, "Invalid API key")
        reply = tikapi_check(params, self.server.sandbox._usernames_by_id)
        if reply.status == 200:
            self.server.sandbox._remember(reply.body["userInfo"]["user"])
        return reply

    def _posts(self, params: Mapping[str, str]) -> Reply:
        if not self._tikapi_key_ok():
            return tikapi_error(403, "Invalid API key")
        self.server.sandbox._hold(params)
        return tikapi_posts(params)

    def _extract(self, query: object) -> Reply:
        if not zyte_key_ok(self.headers.get("Authorization"), self.server.sandbox.zyte_key):
            return fault_reply("401", "zyte")
        return zyte_extract(query)

    def _tikapi_key_ok(self) -> bool:
        sent = self.headers.get("X-API-KEY", "").encode("utf-8", "replace")
        return hmac.compare_digest(sent, self.server.sandbox.tikapi_key.encode())

    def _upstream(
        self, api: Api, target: str, key: str, answer: Callable[[], Reply], platform: str | None = None
    ) -> None:
        """Answer an upstream request: a limit's 429, an injected fault or `answer()`, after the
        latency. It is logged before the client sees anything, so the log is complete once the
        client has its answer."""
        sandbox = self.server.sandbox
        admitted = sandbox._admit(api, self.command, urlsplit(self.path).path, target, key, platform)
        reply: Reply | None = None
        try:
            reply = self._answer(api, admitted, answer)
        finally:
            sandbox._record(admitted, 0 if reply is None else reply.status)
        if reply is None:
            return self._drop()
        self._send(reply)

    def _answer(self, api: Api, admitted: _Admitted, answer: Callable[[], Reply]) -> Reply | None:
        """The reply to send, or None when the connection is to be dropped instead."""
        faults, kind, stopping = admitted.faults, admitted.kind, self.server.sandbox._stopping
        if faults.latency_ms and stopping.wait(faults.latency_ms / 1000):
            return None
        if admitted.call.throttled is not None:
            reply = limit_reply(admitted.call.throttled, api)
        else:
            if kind == "slow" and stopping.wait(faults.slow_ms / 1000):
                return None
            if kind == "reset" or (kind == "timeout" and stopping.wait(self.server.sandbox.timeout_hold_s)):
                return None
            reply = answer() if kind in (None, "slow") else fault_reply(kind, api)
        if api == "zyte":
            reply = replace(reply, headers=reply.headers | {"request-id": str(uuid.uuid4())})
        return reply

    def _drop(self) -> None:
        # linger 0 makes close() send RST: the client sees a reset connection, not a clean answer
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length, self.close_connection = 0, True
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body, ensure_ascii=False).encode()
        self.send_response(reply.status, phrase(reply.status))
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _basic_user(authorization: str | None) -> str:
    """The user name of a Basic `Authorization` header (Zyte's API key), or "" without one."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _platform(url: str) -> str | None:
    """The marketplace a Zyte request's URL is on, or None."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return product_platform(host.rstrip(".")) if host else None


@dataclass(frozen=True)
class _Admitted:
    """An upstream request past the limits' check: its log entry (status still to come), its
    place in arrival order, the faults in force when it came and the fault drawn for it."""

    seq: int
    call: Call
    faults: Faults
    kind: str | None


def _json_or_none(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # skip HTTPServer's reverse-DNS lookup of the host, which can stall without a network
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.socket.getsockname()[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hung up (e.g. after its own read timeout) is part of the game, not an error
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError) or self.sandbox._stopping.is_set():
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """TikAPI + Zyte API on 127.0.0.1 (a free port), in a background thread. `clock` is what the
    rate limits' windows are measured on (seconds; time.monotonic unless a test moves its own)."""

    def __init__(
        self,
        *,
        tikapi_key: str = "sandboxkey1234567890",
        zyte_key: str = "sandboxzytekey123",
        faults: Faults | None = None,
        timeout_hold_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tikapi_key = tikapi_key
        self.zyte_key = zyte_key
        self.timeout_hold_s = timeout_hold_s
        self._faults = faults or Faults({})
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter(requests=0)
        self._attempts: Counter[tuple[str, str, str]] = Counter()
        self._log: deque[tuple[int, Call]] = deque(maxlen=CALL_LOG_SIZE)  # (arrival order, call)
        self._arrivals = 0
        self._clock = clock
        self._limiter = Limiter()
        self._usernames_by_id: dict[str, str] = {}
        self._held_from: int | None = None
        self._released = threading.Event()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="trawl-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by latency or a timeout fault are dropped at once."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would otherwise still be served
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=1)

    def __enter__(self) -> SandboxServer:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("sandbox is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    @property
    def tikapi_url(self) -> str:
        return self.url

    @property
    def zyte_url(self) -> str:
        return f"{self.url}/v1/extract"

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Change the faults and limits from the next request on; the limits' windows are kept."""
        with self._lock:
            self._faults = faults

    @property
    def stats(self) -> dict[str, int]:
        """Requests served on the upstream paths, how many got each injected fault kind, and how
        many a limit answered 429 ("over-user-limit", "over-domain-limit")."""
        with self._lock:
            return dict(self._stats)

    def calls(self) -> Counter[tuple[str, str, str]]:
        """Requests let past the limits per (method, path, target): how often each item was
        fetched (what numbers the fault draws)."""
        with self._lock:
            return Counter(self._attempts)

    def call_log(self) -> list[Call]:
        """The latest requests answered (up to CALL_LOG_SIZE), in the order they came, each with
        when it came and how it was answered; one still being answered is not in it yet."""
        with self._lock:
            logged = list(self._log)
        logged.sort(key=lambda entry: entry[0])  # logged as answered: latency and faults reorder them
        return [call for _, call in logged]

    def hold_posts(self, from_page: int) -> None:
        """Hold back every /public/posts page from page `from_page` (0 is the newest) until
        release_posts(): a job with long accounts then stays running for as long as a test wants."""
        with self._lock:
            self._held_from, self._released = from_page, threading.Event()

    def release_posts(self) -> None:
        with self._lock:
            self._held_from = None
            self._released.set()

    def _hold(self, params: Mapping[str, str]) -> None:
        with self._lock:
            held_from, released = self._held_from, self._released
        if held_from is None:
            return
        username = decode_sec_uid(params.get("secUid", ""))
        cursor = params.get("cursor") or ""
        if username is None or not cursor.isdigit() or not int(cursor):
            page = 0
        else:
            total = video_count(username)
            start = first_older(username, total, cadence_s(username, total), int(cursor))
            page = start // max(1, int(params.get("count", "30") or 30))
        while page >= held_from and not released.wait(0.2) and not self._stopping.is_set():
            pass

    def _admit(
        self, api: Api, method: str, path: str, target: str, key: str, platform: str | None
    ) -> _Admitted:
        """Check the limits, then draw the fault: a request over a limit consumes no draw, so
        the accepted requests see the same fault sequence with or without limits."""
        with self._lock:
            now, faults = self._clock(), self._faults
            throttled = self._limiter.admit(faults, now, api, key, platform)
            kind = None
            self._stats["requests"] += 1
            if throttled is not None:
                self._stats[f"over-{throttled}-limit"] += 1
            else:
                attempt = self._attempts[method, path, target]
                self._attempts[method, path, target] += 1
                kind = faults.decide(method, path, target, attempt)
                if kind is not None:
                    self._stats[kind] += 1
            call = Call(time.time(), method, path, target, 0, api, throttled, platform, now)
            self._arrivals += 1
            return _Admitted(self._arrivals, call, faults, kind)

    def _record(self, admitted: _Admitted, status: int) -> None:
        with self._lock:
            self._log.append((admitted.seq, replace(admitted.call, status=status)))

    def _remember(self, user: JSON) -> None:
        with self._lock:
            self._usernames_by_id[user["id"]] = user["uniqueId"]

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _faults_body(self) -> JSON:
        faults = self.faults
        return {"faults": faults.spec(), "latency_ms": faults.latency_ms, "seed": faults.seed}

    def _control(self, raw: bytes) -> Reply:
        try:
            update = _FaultsUpdate.model_validate_json(raw or b"{}")
            seed = self.faults.seed if update.seed is None else update.seed
            self.set_faults(
                Faults.parse(update.faults, latency_ms=update.latency_ms, seed=seed, slow_ms=update.slow_ms)
            )
        except (ValidationError, ValueError) as error:
            return Reply(400, {"error": str(error)})
        return Reply(200, self._faults_body())
