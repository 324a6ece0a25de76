"""The local runtime's worker execution environments: one process each, kept warm, and what
the runtime sees when a handler raises or the process dies."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from trawl.local.container import ContainerDied, HandlerError, ProcessContainer
from trawl.local.stack import FunctionInfo

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


def test_a_failing_init_is_reported_when_the_container_starts() -> None:
    with pytest.raises(HandlerError, match="RuntimeError: cannot start: no key"):
        ProcessContainer(PROBE, {"PROBE_FAIL_INIT": "no key"})


def test_close_ends_the_process(container: ProcessContainer) -> None:
    container.invoke({})
    container.close()
    assert not container.alive
