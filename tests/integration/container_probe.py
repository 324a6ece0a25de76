"""A handler module for tests/integration/test_local_container.py: the module interface the
local runtime's containers call (build_deps, handle), with answers that show where it ran."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any


def build_deps(env: Mapping[str, str]) -> dict[str, Any]:
    if env.get("PROBE_FAIL_INIT"):
        raise RuntimeError(f"cannot start: {env['PROBE_FAIL_INIT']}")
    return {"greeting": env["PROBE_GREETING"], "invocations": 0}


def handle(event: dict[str, Any], context: Any, deps: dict[str, Any]) -> dict[str, Any]:
    deps["invocations"] += 1
    if "raise" in event:
        raise ValueError(event["raise"])
    if "exit" in event:
        os._exit(event["exit"])
    if "sleep" in event:
        time.sleep(event["sleep"])
    return {
        "pid": os.getpid(),
        "greeting": deps["greeting"],
        "invocations": deps["invocations"],
        "function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
