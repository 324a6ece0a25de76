"""The local runtime's execution environments: one process each, holding only the function's
staged artifact and speaking Lambda's Runtime API; kept warm while used and reclaimed when idle;
and what the runtime sees when a handler raises, its module does not import, or the process
dies."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import process_state
from trawl.local.artifacts import Artifact, stage
from trawl.local.environment import ContainerDied, Environment, HandlerError
from trawl.local.runtime import LocalRuntime
from trawl.local.session import LOCAL_WORKER_ENV, local_session
from trawl.stack.describe import FunctionInfo
from trawl.stack.submit import job_id_of

PROBE = FunctionInfo(
    name="probe-fn",
    handler="container_probe.lambda_handler",
    timeout_s=30,
    memory_mb=256,
    env={},
)


def probe_artifact(folder: Path) -> Artifact:
    """An artifact holding only tests/integration/container_probe.py, with Lambda's runtime beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("container_probe.py"), folder / "container_probe.py")
    return Artifact(task=folder, runtime=stage("LedgerFunction").runtime)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    return probe_artifact(tmp_path_factory.mktemp("probe"))


@pytest.fixture
def container(artifact: Artifact) -> Iterator[Environment]:
    started = Environment(PROBE, {"PROBE_GREETING": "hello"}, artifact)
    yield started
    started.close()


def test_invocations_run_warm_in_one_other_process(container: Environment) -> None:
    first = container.invoke({}, "request-1")
    second = container.invoke({})
    assert first["pid"] != os.getpid()
    assert second["pid"] == first["pid"]
    assert (first["invocations"], second["invocations"]) == (1, 2)  # init once, kept warm
    assert first["greeting"] == "hello"  # the function's environment reached its init
    assert first["function"] == "probe-fn"
    assert 0 < first["remaining_ms"] <= 30_000


def test_the_context_carries_what_lambdas_does(container: Environment) -> None:
    answer = container.invoke({}, "a-request-id")
    assert answer["request_id"] == "a-request-id"
    assert answer["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:probe-fn"
    assert answer["memory_mb"] == "256" and answer["log_group"] == "/aws/lambda/probe-fn"


def test_an_environment_sees_its_artifact_and_the_runtime_only(
    container: Environment, artifact: Artifact
) -> None:
    path = container.invoke({})["path"]
    assert path[:2] == [str(artifact.task), str(artifact.runtime)]
    assert not any("site-packages" in entry for entry in path), path
    # The probe's artifact ships no SDK, and none comes from anywhere else: the artifacts carry
    # their own. trawl and the dev tools are nowhere in an environment either.
    container.invoke({"import": "json"})
    for missing in ("boto3", "trawl", "pytest", "httpx"):
        with pytest.raises(HandlerError, match=f"ModuleNotFoundError: No module named '{missing}'"):
            container.invoke({"import": missing})


def test_a_handler_error_comes_back_with_its_traceback_and_the_container_stays(
    container: Environment,
) -> None:
    with pytest.raises(HandlerError, match=r"probe-fn raised:(.|\n)*ValueError: row 7 is bad"):
        container.invoke({"raise": "row 7 is bad"})
    assert container.alive
    assert container.invoke({})["invocations"] == 2


def test_a_process_that_dies_mid_invocation_is_reported_with_its_exit_code(
    container: Environment,
) -> None:
    with pytest.raises(ContainerDied, match=r"probe-fn: its process ended \(exit code 3\)"):
        container.invoke({"exit": 3})
    assert not container.alive
    with pytest.raises(ContainerDied):
        container.invoke({})


def test_an_invocation_past_the_function_timeout_ends_the_environment(artifact: Artifact) -> None:
    quick = Environment(dataclasses.replace(PROBE, timeout_s=1), {"PROBE_GREETING": "hi"}, artifact)
    try:
        started = time.monotonic()
        with pytest.raises(ContainerDied, match=r"probe-fn: timed out after 1 s; its process was stopped"):
            quick.invoke({"sleep": 30})
        assert time.monotonic() - started < 10
        assert not quick.alive
    finally:
        quick.close()


def test_a_failing_init_is_reported_when_the_container_starts(artifact: Artifact) -> None:
    with pytest.raises(HandlerError, match=r"failed to start:(.|\n)*RuntimeError: cannot start: no key"):
        Environment(PROBE, {"PROBE_FAIL_INIT": "no key"}, artifact)


def test_close_ends_the_process(container: Environment) -> None:
    container.invoke({})
    container.close()
    assert not container.alive


def test_a_worker_whose_artifact_lacks_a_package_fails_to_start(tmp_path: Path) -> None:
    """The worker's real artifact starts; the same artifact with httpx removed (the mutation) fails
    its init, as it would on Lambda: no other copy of httpx is within the environment's reach."""
    with local_session(workers=False) as session:
        worker = session.stack.workers()[0]
        env = session.runtime._env(worker)
        staged = session.runtime.artifact(worker)
        whole = Environment(worker, env, staged)
        whole.close()
        lacking = tmp_path / "task"
        shutil.copytree(staged.task, lacking, symlinks=True)
        shutil.rmtree(lacking / "httpx")
        with pytest.raises(HandlerError, match=r"failed to start:(.|\n)*No module named 'httpx'"):
            Environment(worker, env, Artifact(task=lacking, runtime=staged.runtime))


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


def test_a_container_ends_when_the_runtime_is_killed(tmp_path: Path) -> None:
    _killed_parent_leaves_no_child(
        "from tests.integration.test_local_container import PROBE, probe_artifact\n"
        "from trawl.local.environment import Environment\n"
        "from pathlib import Path\n"
        "import time\n"
        f"c = Environment(PROBE, {{'PROBE_GREETING': 'hi'}}, probe_artifact(Path({str(tmp_path)!r})))\n"
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
