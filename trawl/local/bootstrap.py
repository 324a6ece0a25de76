"""The runtime interface client of a local execution environment: the loop a Lambda runtime runs
in each execution environment, speaking Lambda's Runtime API to the local stand-in.

Why not awslambdaric (AWS's own client): it ships Linux wheels only, and the local default must
run on macOS too. The Runtime API is small and documented, so this is a faithful client of it in
the standard library alone. That matters: this file runs as `python -I -S bootstrap.py`, where
sys.path holds LAMBDA_TASK_ROOT (the function's artifact, SDK included), LAMBDA_RUNTIME_DIR
(on Lambda the runtime's own boto3, which the artifact's shadows; locally empty) and the standard
library, in that order as on Lambda, and
nothing of trawl's or of the virtualenv. An import the artifact lacks fails here as it would on Lambda.

The loop (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
- init: import the module of `_HANDLER` ("package.module.function"); if that fails, POST
  /runtime/init/error and exit;
- then forever: GET /runtime/invocation/next (the event, with the request id and deadline in
  headers), call the handler with a context object, POST .../response or .../error.
If the Runtime API goes away (the stand-in stopped, or its process was killed), so does this
environment: an urllib error is an OSError."""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
import urllib.request
from typing import Any

API_VERSION = "2018-06-01"


class LambdaContext:
    """What Lambda's context object carries, from the Runtime API's headers and the environment."""

    def __init__(self, request_id: str, deadline_ms: int, function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> bytes:
    """An error as Lambda reports it: type, message and the stack trace's lines."""
    return json.dumps(
        {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_exception(exc),
        }
    ).encode()


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    with urllib.request.urlopen(request) as answer:
        answer.read()


def _handler() -> Any:
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def main() -> None:
    # Ended by the stand-in (or with it), never by a Ctrl-C meant for the terminal's command.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Handlers log to stdout, as on Lambda; a line is out as soon as it is written.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], os.environ["LAMBDA_RUNTIME_DIR"]]
    api = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/{API_VERSION}/runtime"
    try:
        serve(api)
    except OSError:
        return  # the Runtime API is gone (the stand-in stopped, or was killed): so is this environment


def serve(api: str) -> None:
    try:
        handler = _handler()
    except Exception as exc:
        _post(
            f"{api}/init/error",
            _error(exc),
            {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
        )
        sys.exit(1)
    while True:
        with urllib.request.urlopen(f"{api}/invocation/next") as answer:
            event = json.loads(answer.read() or b"null")
            request_id = answer.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline_ms = int(answer.headers["Lambda-Runtime-Deadline-Ms"])
            arn = answer.headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        context = LambdaContext(request_id, deadline_ms, arn)
        try:
            body = json.dumps(handler(event, context)).encode()
        except Exception as exc:
            _post(f"{api}/invocation/{request_id}/error", _error(exc))
            continue
        _post(f"{api}/invocation/{request_id}/response", body)


if __name__ == "__main__":
    main()
