"""A minimal local SQS endpoint for benchmarks: SendMessageBatch and SendMessage over the JSON
protocol current botocore speaks, answered in constant time (moto's SQS slows with queue depth,
which would measure moto, not the producer). Messages are counted, not kept.

Each answer can wait a fixed round trip first (LATENCY_MS): a real SendMessage crosses the
network and is stored in several places before SQS answers, and that per-request wait is what
batching and concurrent senders exist to hide. Requests are served concurrently, so waits overlap
as they would on SQS.

Run it in its own process (`python -m bench.sqs_stub PORT [LATENCY_MS]`) so it does not share
the GIL with the code being measured."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

QUEUE_URL_PREFIX = "http://127.0.0.1"


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages = 0


COUNTS = _Counts()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _send_batch(request: dict[str, Any]) -> dict[str, Any]:
    entries = request.get("Entries", [])
    with COUNTS.lock:
        COUNTS.messages += len(entries)
    return {
        "Successful": [
            {"Id": e["Id"], "MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(e["MessageBody"])}
            for e in entries
        ],
        "Failed": [],
    }


def _send(request: dict[str, Any]) -> dict[str, Any]:
    with COUNTS.lock:
        COUNTS.messages += 1
    return {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(request["MessageBody"])}


def _count(_: dict[str, Any]) -> dict[str, Any]:
    # Not an SQS action: lets the bench check that every message arrived.
    with COUNTS.lock:
        return {"Count": COUNTS.messages}


ACTIONS = {"SendMessageBatch": _send_batch, "SendMessage": _send, "TrawlCount": _count}


class _Handler(BaseHTTPRequestHandler):
    latency_s = 0.0
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    # Headers and body go out as two writes; with Nagle on, each reply waits ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        action = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        handler = ACTIONS.get(action)
        if handler is None:
            self._reply(400, {"__type": "com.amazonaws.sqs#UnsupportedOperation", "message": action})
            return
        if self.latency_s and action != "TrawlCount":
            time.sleep(self.latency_s)
        self._reply(200, handler(json.loads(body or b"{}")))

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int, latency_ms: float = 0.0) -> None:
    _Handler.latency_s = latency_ms / 1000
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
