"""Serving the dashboard on 127.0.0.1 with uvicorn: in a thread beside `trawl up`'s stack, or in
the foreground for `trawl ui`. Its AWS clients are made once and shared by its requests."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from trawl.stack.describe import Stack
from trawl.stack.endpoint import Endpoint
from trawl.ui.app import create_app
from trawl.ui.guard import LOOPBACK, Access


@dataclass(frozen=True)
class SharedClients(Endpoint):
    """The stack's endpoint, with one client per service for all of the dashboard's requests:
    boto3 clients may be shared between threads, but making them at once in several is not safe
    (and each costs milliseconds)."""

    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def of(cls, endpoint: Endpoint) -> SharedClients:
        return cls(endpoint.url, endpoint.region, endpoint.local, endpoint.lambda_url)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = super().client(service)
            return self._clients[service]

    def made(self) -> dict[str, Any]:
        """The clients made so far, by service."""
        with self._lock:
            return dict(self._clients)


def _listen(port: int) -> socket.socket:
    """A socket listening on the loopback address only (port 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


@dataclass
class Running:
    """A dashboard serving in a thread of this process."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def _server(stack: Stack, port: int) -> tuple[uvicorn.Server, socket.socket, Access]:
    sock = _listen(port)
    access = Access(sock.getsockname()[1])
    if not isinstance(stack.endpoint, SharedClients):
        stack = dataclasses.replace(stack, endpoint=SharedClients.of(stack.endpoint))
    config = uvicorn.Config(
        create_app(stack, access),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=2,  # a browser tab left open must not hold up `trawl up` stopping
    )
    return uvicorn.Server(config), sock, access


def start_dashboard(stack: Stack, port: int = 0) -> Running:
    """Serve the dashboard in a daemon thread; its URL (with the run's token) at once."""
    server, sock, access = _server(stack, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True)
    thread.start()
    return Running(access.url, server, thread)


def serve_dashboard(stack: Stack, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve the dashboard in this thread until Ctrl-C; `on_ready` gets its URL first."""
    server, sock, access = _server(stack, port)
    on_ready(access.url)
    server.run(sockets=[sock])
