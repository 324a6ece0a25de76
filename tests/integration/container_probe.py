"""A Lambda handler module for tests/integration/test_local_container.py, staged as an artifact of
its own: module-level init from the environment, as a real handler's is, and answers that show
where and how it ran."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

if os.environ.get("PROBE_FAIL_INIT"):
    raise RuntimeError(f"cannot start: {os.environ['PROBE_FAIL_INIT']}")
GREETING = os.environ["PROBE_GREETING"]
invocations = 0


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global invocations
    invocations += 1
    if "raise" in event:
        raise ValueError(event["raise"])
    if "exit" in event:
        os._exit(event["exit"])
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "import" in event:
        __import__(event["import"])
    return {
        "pid": os.getpid(),
        "greeting": GREETING,
        "invocations": invocations,
        "function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "memory_mb": context.memory_limit_in_mb,
        "log_group": context.log_group_name,
        "path": sys.path,
    }
