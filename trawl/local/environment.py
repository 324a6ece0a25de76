"""One Lambda execution environment: a process of its own, running the function's staged artifact
(trawl/local/artifacts.py) under trawl/local/bootstrap.py, which speaks Lambda's Runtime API to
the server here, one per environment.

As on Lambda:
- init ends when the runtime first asks for an invocation; if the handler's module does not
  import, the runtime reports an init error and the environment is gone;
- an invocation carries its event, request id, deadline and function ARN, and its answer is the
  handler's result or its error with the stack trace;
- one that outlives the function's Timeout ends the environment: its process is killed;
- a process that dies is reported, and the invocation it held fails;
- the process ends when its parent does: the Runtime API it polls goes away with the parent."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trawl.local.artifacts import BOOTSTRAP, Artifact
from trawl.local.events import function_arn
from trawl.stack.describe import FunctionInfo

# How long init (the handler module's imports) may take: Lambda allows 10 s, and this leaves room
# for a loaded 2-core machine starting several environments at once.
INIT_TIMEOUT_S = 60.0
API = "/2018-06-01/runtime"


class ContainerDied(RuntimeError):
    """The execution environment's process ended while it held an invocation (or before init)."""

    def __init__(self, message: str, interrupted: bool = False) -> None:
        super().__init__(message)
        # Killed by a SIGINT meant for the terminal's command, as it was being started.
        self.interrupted = interrupted


class HandlerError(RuntimeError):
    """The handler raised (or its module did not import); the message carries the stack trace."""


@dataclass
class _Invocation:
    request_id: str
    body: bytes
    deadline_ms: int
    answer: tuple[bool, Any] | None = None


@dataclass
class _State:
    """What the Runtime API server and the environment's owner share, under `changed`."""

    function_arn: str
    changed: threading.Condition = field(default_factory=threading.Condition)
    ready: bool = False  # the runtime asked for its first invocation: init is over
    init_error: dict[str, Any] | None = None
    pending: _Invocation | None = None  # handed to the runtime on its next request
    running: dict[str, _Invocation] = field(default_factory=dict)
    closing: bool = False


class _RuntimeApi(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        if self.path != f"{API}/invocation/next":
            return self._reply(404)
        state = self.server.state
        with state.changed:
            state.ready = True
            state.changed.notify_all()
            while state.pending is None and not state.closing:
                state.changed.wait()
            if state.closing:
                return self._reply(410)  # the environment is shutting down: the runtime exits
            invocation, state.pending = state.pending, None
            assert invocation is not None
            state.running[invocation.request_id] = invocation
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", state.function_arn)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(invocation.body)))
        self.end_headers()
        self.wfile.write(invocation.body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        state = self.server.state
        parts = self.path.removeprefix(API + "/").split("/")
        with state.changed:
            if parts == ["init", "error"]:
                state.init_error = body
            elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                invocation = state.running.pop(parts[1], None)
                if invocation is None:
                    return self._reply(400)
                invocation.answer = (parts[2] == "response", body)
            else:
                return self._reply(404)
            state.changed.notify_all()
        self._reply(202)

    def _reply(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApi)
        self.state = state


class Environment:
    """The parent's handle on one execution environment (see the module docstring)."""

    def __init__(
        self,
        function: FunctionInfo,
        env: Mapping[str, str],
        artifact: Artifact,
        init_timeout_s: float = INIT_TIMEOUT_S,
    ) -> None:
        self.function = function
        region = env.get("AWS_REGION", "us-east-1")
        self._state = _State(function_arn=function_arn(region, function.name))
        self._server = _Server(self._state)
        threading.Thread(
            target=self._server.serve_forever, name=f"{function.name}-runtime-api", daemon=True
        ).start()
        self._process = subprocess.Popen(
            # The function's name is there for `ps`; the bootstrap reads only its environment.
            [sys.executable, "-I", "-S", str(BOOTSTRAP), function.name],
            env=_lambda_env(function, env, artifact, f"127.0.0.1:{self._server.server_port}"),
            stdin=subprocess.DEVNULL,
            # Handlers log to stdout, as on Lambda; locally stdout carries the CLI's own output
            # (`--json`), so their lines go to this process's stderr.
            stdout=2,
            stderr=2,
            # A process group of its own: Ctrl-C in the terminal reaches the runtime, which ends its
            # environments in order.
            process_group=0,
        )
        try:
            self._wait_for_init(init_timeout_s)
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    @property
    def pid(self) -> int:
        return self._process.pid

    def _wait_for_init(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._state.changed:
            while not self._state.ready and self._state.init_error is None:
                if not self.alive:
                    raise self._died("it ended during init")
                if time.monotonic() > deadline:
                    self._process.kill()
                    raise self._died(f"init took longer than {timeout_s:g} s; its process was stopped")
                self._state.changed.wait(0.05)
            if self._state.init_error is not None:
                raise HandlerError(
                    f"{self.function.name} failed to start:\n{_describe(self._state.init_error)}"
                )

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """The handler's result. An invocation that outlives the function's timeout ends the
        environment: its process is killed and ContainerDied raised."""
        timeout_s = self.function.timeout_s
        invocation = _Invocation(
            request_id or str(uuid.uuid4()),
            json.dumps(event).encode(),
            int((time.time() + timeout_s) * 1000),
        )
        deadline = time.monotonic() + timeout_s
        with self._state.changed:
            if not self.alive:
                raise self._died()
            self._state.pending = invocation
            self._state.changed.notify_all()
            while invocation.answer is None:
                if not self.alive:
                    raise self._died()
                if time.monotonic() > deadline:
                    self._process.kill()
                    raise self._died(f"timed out after {timeout_s:g} s; its process was stopped")
                self._state.changed.wait(0.05)
        ok, value = invocation.answer
        if not ok:
            raise HandlerError(f"{self.function.name} raised:\n{_describe(value)}")
        return value

    def _died(self, why: str = "") -> ContainerDied:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)  # a dead connection can come a moment before the exit status
        code = self._process.poll()
        why = why or f"its process ended (exit code {code})"
        return ContainerDied(f"{self.function.name}: {why}", interrupted=code == -signal.SIGINT)

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a crashed execution environment ends."""
        self._process.kill()
        self._process.wait()

    def close(self) -> None:
        """Shut down as Lambda does: the runtime's next request is refused and it exits; a process
        that does not is stopped."""
        with self._state.changed:
            self._state.closing = True
            self._state.changed.notify_all()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._server.shutdown()
        self._server.server_close()


def _lambda_env(
    function: FunctionInfo, env: Mapping[str, str], artifact: Artifact, api: str
) -> dict[str, str]:
    """The environment Lambda gives a runtime: the function's variables and Lambda's own; none of
    this process's (no PYTHONPATH, no virtualenv)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        **env,
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        "LAMBDA_TASK_ROOT": str(artifact.task),
        "LAMBDA_RUNTIME_DIR": str(artifact.runtime),
        "_HANDLER": function.handler,
    }


def _describe(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    trace = "".join(error.get("stackTrace") or [])
    return trace or f"{error.get('errorType')}: {error.get('errorMessage')}"
