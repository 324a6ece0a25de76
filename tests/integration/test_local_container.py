"""The local runtime's worker execution environments: one process each, kept warm while used and
reclaimed when idle, and what the runtime sees when a handler raises or the process dies."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import process_state
from trawl.local.container import ContainerDied, HandlerError, ProcessContainer
from trawl.local.runtime import LocalRuntime
from trawl.local.session import LOCAL_WORKER_ENV, local_session
from trawl.stack.describe import FunctionInfo
from trawl.stack.submit import job_id_of

PROBE = FunctionInfo(
    name="probe-fn",
    handler="tests.integration.container_probe.lambda_handler",
    timeout_s=30,
    memory_mb=256,
    env={},
)


@pytest.fixture
def container() -> Iterator[ProcessContainer]:
    started = ProcessContainer(PROBE, {"PROBE_GREETING": "hello"})
    yield started
    started.close()


def test_invocations_run_warm_in_one_other_process(container: ProcessContainer) -> None:
    first = container.invoke({})
    second = container.invoke({})
    assert first["pid"] != os.getpid()
    assert second["pid"] == first["pid"]
    assert (first["invocations"], second["invocations"]) == (1, 2)  # deps built once, kept
    assert first["greeting"] == "hello"  # the function's environment reached build_deps
    assert first["function"] == "probe-fn"
    assert 0 < first["remaining_ms"] <= 30_000


def test_a_handler_error_comes_back_with_its_traceback_and_the_container_stays(
    container: ProcessContainer,
) -> None:
    with pytest.raises(HandlerError, match=r"probe-fn raised:(.|\n)*ValueError: row 7 is bad"):
        container.invoke({"raise": "row 7 is bad"})
    assert container.alive
    assert container.invoke({})["invocations"] == 2


def test_a_process_that_dies_mid_invocation_is_reported_with_its_exit_code(
    container: ProcessContainer,
) -> None:
    with pytest.raises(ContainerDied, match=r"probe-fn: its container process ended \(exit code 3\)"):
        container.invoke({"exit": 3})
    assert not container.alive
    with pytest.raises(ContainerDied):
        container.invoke({})


def test_an_invocation_past_the_function_timeout_ends_the_environment() -> None:
    quick = ProcessContainer(dataclasses.replace(PROBE, timeout_s=1), {"PROBE_GREETING": "hi"})
    try:
        started = time.monotonic()
        with pytest.raises(ContainerDied, match=r"probe-fn: timed out after 1 s; its process was stopped"):
            quick.invoke({"sleep": 30})
        assert time.monotonic() - started < 10
        assert not quick.alive
    finally:
        quick.close()


def test_a_failing_init_is_reported_when_the_container_starts() -> None:
    with pytest.raises(HandlerError, match="RuntimeError: cannot start: no key"):
        ProcessContainer(PROBE, {"PROBE_FAIL_INIT": "no key"})


def test_close_ends_the_process(container: ProcessContainer) -> None:
    container.invoke({})
    container.close()
    assert not container.alive


def _killed_parent_leaves_no_child(script: str) -> None:
    """Run `script` (which starts a child process and prints its pid) in a parent process, kill
    the parent with SIGKILL (no cleanup runs), and check that the child ends by itself."""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while process_state(child) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.1)
    state = process_state(child)
    assert state in ("gone", "Z"), f"child {child} still running ({state}) 10 s after its parent was killed"


def test_a_container_ends_when_the_runtime_is_killed() -> None:
    _killed_parent_leaves_no_child(
        "from tests.integration.test_local_container import PROBE\n"
        "from trawl.local.container import ProcessContainer\n"
        "import time\n"
        "c = ProcessContainer(PROBE, {'PROBE_GREETING': 'hi'})\n"
        "print(c.invoke({})['pid'], flush=True)\n"
        "time.sleep(60)\n"
    )


def test_the_embedded_aws_server_ends_when_its_parent_is_killed() -> None:
    _killed_parent_leaves_no_child(
        "from trawl.local.aws import EmbeddedAws\n"
        "import time\n"
        "aws = EmbeddedAws().start()\n"
        "print(aws._process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )


def test_idle_environments_are_reclaimed_and_started_again_when_work_comes(tmp_path: Path) -> None:
    with local_session() as session:
        session.runtime.stop()
        runtime = LocalRuntime(session.stack, env_overrides=LOCAL_WORKER_ENV, idle_s=1.5).start()
        try:
            for attempt in ("first", "again"):
                path = tmp_path / f"idle_{attempt}.csv"
                path.write_text("username\n" + "".join(f"idle_{attempt}_{n}\n" for n in range(30)))
                key = f"input/tiktok/account/{path.name}"
                session.stack.endpoint.client("s3").upload_file(str(path), session.stack.bucket, key)
                runtime.deliver(runtime.upload_event(session.stack.bucket, key))
                deadline = time.monotonic() + 60
                while runtime.progress.processed[job_id_of(session.stack, key)] < 30:
                    assert time.monotonic() < deadline, f"{attempt}: items not processed"
                    time.sleep(0.1)
                assert runtime.warm_environments >= 1
                while runtime.warm_environments:
                    assert time.monotonic() < deadline + 10, "idle environments were not reclaimed"
                    time.sleep(0.2)
        finally:
            runtime.stop()
