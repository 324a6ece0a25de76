"""Asynchronous invocation, as the Lambda service runs it, for the local stand-in:
- one event queue per function, taken one event at a time by its execution environment;
- an invocation that fails (its handler raised, or its environment died) is retried with the
  same request id, after Lambda's delays (1 and 2 minutes on AWS; scaled down locally), as
  often as the function's EventInvokeConfig allows;
- when the retries run out, its invocation record, shaped as AWS shapes it, goes to the
  function's on-failure destination (an SQS queue).
It also answers Lambda's Invoke API (InvocationType Event) on loopback, so the producer's own
continuations and `trawl replay` reach it through boto3, exactly as they reach Lambda."""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from trawl.local.events import function_arn
from trawl.stack.describe import FunctionInfo

log = logging.getLogger(__name__)

# On AWS the retries come about 1 and 2 minutes after a failure; locally a second and two.
LOCAL_RETRY_DELAYS_S = (1.0, 2.0)


@dataclass(frozen=True)
class Invocation:
    event: dict[str, Any]
    request_id: str
    attempt: int = 1  # 1 is the first try; Lambda keeps the request id when it retries


class AsyncInvocations:
    """One function's asynchronous event queue and its retries."""

    def __init__(
        self,
        function: FunctionInfo,
        invoke: Callable[[Invocation], Any],
        sqs: Any,
        region: str,
        retry_delays_s: tuple[float, ...] = LOCAL_RETRY_DELAYS_S,
        before: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.function = function
        self._invoke = invoke
        self._sqs = sqs
        self._region = region
        self._delays = retry_delays_s
        self._before = before
        self._events: queue.Queue[Invocation] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0  # queued, running or waiting for a retry
        self._timers: list[threading.Timer] = []
        self.failed_for_good = 0
        self.invocations = 0

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._pending > 0

    def submit(self, event: dict[str, Any], request_id: str | None = None) -> str:
        """Queue an event (InvocationType Event); its request id."""
        invocation = Invocation(event, request_id or str(uuid.uuid4()))
        with self._lock:
            self._pending += 1
        self._events.put(invocation)
        return invocation.request_id

    def run(self, stop: threading.Event) -> None:
        """Take events until `stop`; meant for a thread of its own."""
        while not stop.is_set():
            try:
                invocation = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                if self._before is not None:
                    self._before(invocation)
                if stop.is_set():
                    return
                self._invoke(invocation)
                self.invocations += 1
            except Exception as exc:
                if stop.is_set():
                    return  # stopping: whatever failed failed because the stack is going away
                self._failed(invocation, exc)
                continue
            self._done()
        for timer in self._timers:
            timer.cancel()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    def _failed(self, invocation: Invocation, exc: Exception) -> None:
        retries = self.function.async_config.max_retry_attempts
        if invocation.attempt <= min(retries, len(self._delays)):
            delay = self._delays[invocation.attempt - 1]
            log.warning(
                "%s invocation %s failed (%s); Lambda retries it in %g s",
                self.function.name,
                invocation.request_id,
                _error_line(exc),
                delay,
            )
            again = Invocation(invocation.event, invocation.request_id, invocation.attempt + 1)
            timer = threading.Timer(delay, self._events.put, args=(again,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
            return
        log.error(
            "%s invocation %s failed its last attempt (%s)",
            self.function.name,
            invocation.request_id,
            _error_line(exc),
        )
        self.failed_for_good += 1
        try:
            self._to_destination(invocation, exc)
        finally:
            self._done()

    def _to_destination(self, invocation: Invocation, exc: Exception) -> None:
        arn = self.function.async_config.on_failure_arn
        if arn is None:
            log.error("%s has no on-failure destination: the event is dropped", self.function.name)
            return
        name = arn.rsplit(":", 1)[1]
        url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps(self.record(invocation, exc)))

    def record(self, invocation: Invocation, exc: Exception) -> dict[str, Any]:
        """The invocation record Lambda sends to an on-failure destination."""
        arn = f"{function_arn(self._region, self.function.name)}:$LATEST"
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "version": "1.0",
            "timestamp": now,
            "requestContext": {
                "requestId": invocation.request_id,
                "functionArn": arn,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": invocation.attempt,
            },
            "requestPayload": invocation.event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_exception(exc)[-3:],
            },
        }


def _error_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


class InvokeServer:
    """Lambda's Invoke API for the stack's asynchronously invoked functions, on 127.0.0.1."""

    def __init__(self, functions: dict[str, AsyncInvocations]) -> None:
        self._functions = functions
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _invoke_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lambda-invoke", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def start(self) -> InvokeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def invoke(self, name: str, invocation_type: str, payload: bytes) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for one Invoke call."""
        function = self._functions.get(_function_name(name))
        if function is None:
            known = ", ".join(sorted(self._functions))
            message = f"Function not found: {name} (the local stand-in serves {known})"
            return 404, {"Type": "User", "Message": message, "__type": "ResourceNotFoundException"}
        if invocation_type != "Event":
            message = "the local Lambda stand-in serves asynchronous invocations (InvocationType Event) only"
            return 400, {"Type": "User", "Message": message, "__type": "InvalidParameterValueException"}
        try:
            event = json.loads(payload or b"{}")
        except ValueError:
            return 400, {
                "Type": "User",
                "Message": "Could not parse request body into json",
                "__type": "InvalidRequestContentException",
            }
        function.submit(event)
        return 202, {}


def _function_name(name: str) -> str:
    """A function name from a name, a partial or a full ARN, with or without a qualifier."""
    name = unquote(name)
    if name.startswith("arn:"):
        name = name.split(":")[6]
    return name.split(":", 1)[0]


def _invoke_handler(server: InvokeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            parts = self.path.split("?")[0].strip("/").split("/")
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            if (
                len(parts) == 4
                and parts[0] == "2015-03-31"
                and parts[1] == "functions"
                and parts[3] == "invocations"
            ):
                status, body = server.invoke(
                    parts[2], self.headers.get("X-Amz-Invocation-Type", "RequestResponse"), payload
                )
            else:
                status, body = 404, {"Message": f"no such Lambda API path: {self.path}"}
            data = json.dumps(body).encode() if body else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 202:
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if "__type" in body:
                self.send_header("x-amzn-ErrorType", body["__type"])
            self.end_headers()
            self.wfile.write(data)

    return Handler
