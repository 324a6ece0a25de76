"""The job ledger as users see it, on one stack that plays `trawl up`: `run` and `status` agree
on a job's numbers, a videos account settles with its last page (0 videos included), two jobs
on one stack each finish on their own counts, and a settled job is announced on EventBridge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from trawl.cli import app
from trawl.local.session import LocalSession, local_session, up_state
from trawl.sandbox import Faults

runner = CliRunner()
TRAWL = str(Path(sys.executable).with_name("trawl"))
# Half the local default: the large job still takes several producer invocations, and the work
# queued ahead of a job that arrives meanwhile (the pacing's low water plus one invocation's
# rows) is smaller, so a smaller large job still outlasts the small one.
ROWS_PER_INVOCATION = 200


# The module's `trawl up` stack is found through this TRAWL_HOME (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("module_trawl_home")


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[LocalSession]:
    with local_session() as session:
        # Set before the producer's environment starts (the first test's run starts it).
        session.runtime.producer_env_overrides["MAX_ROWS_PER_INVOCATION"] = str(ROWS_PER_INVOCATION)
        session.runtime.watch_uploads(interval_s=0.2)
        state = up_state(session)
        (home / "up.json").write_text(json.dumps(state.__dict__), encoding="utf-8")
        yield session


def _run(tmp_path: Path, name: str, text: str) -> dict[str, Any]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    ran = runner.invoke(app, ["run", str(path), "--json", "--data-dir", str(tmp_path / "data")])
    assert ran.exit_code in (0, 1), ran.output
    summary: dict[str, Any] = json.loads(ran.stdout)
    return summary


def _start_run(path: Path, data_dir: Path) -> subprocess.Popen[str]:
    """`trawl run` in a process of its own (as in another terminal), on the stack of `up`."""
    command = [TRAWL, "run", str(path), "--platform", "tiktok", "--json", "--data-dir", str(data_dir)]
    return subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _status(job_id: str) -> tuple[int, dict[str, Any]]:
    status = runner.invoke(app, ["status", job_id, "--json"])
    found: dict[str, Any] = json.loads(status.stdout)
    return status.exit_code, found


def _without_local_paths(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "data_dir"}


def test_an_account_with_no_videos_settles_and_run_and_status_agree(up: LocalSession, tmp_path: Path) -> None:
    ran = _run(tmp_path, "tiktok_videos_empty.csv", "username\nvideos_0\nvideos_7\n")

    assert ran["state"] == "done"
    assert (ran["enqueued"], ran["written_ok"], ran["in_flight"], ran["records"]) == (2, 2, 0, 7)
    code, status = _status(ran["job_id"])
    assert code == 0
    assert _without_local_paths(status) == _without_local_paths(ran)


def test_a_videos_job_runs_until_its_last_page_is_written(up: LocalSession, tmp_path: Path) -> None:
    # videos_100 is four pages of 30: the first message writes three, a follow-up the fourth.
    up.sandbox.hold_posts(from_page=3)
    path = tmp_path / "tiktok_videos_long.csv"
    path.write_text("username\nvideos_100\n", encoding="utf-8")
    run = _start_run(path, tmp_path / "data")
    try:
        deadline = time.monotonic() + 60
        while True:
            listed = runner.invoke(app, ["status", "--json"])
            jobs = [j for j in json.loads(listed.stdout) if j.get("input_key", "").endswith(path.name)]
            if jobs:
                code, status = _status(str(jobs[0]["job_id"]))
                if status["records"] == 90:
                    break
            assert time.monotonic() < deadline, listed.stdout
            time.sleep(0.3)
        # Three pages written, the fourth held back: the account is not settled, the job runs.
        assert (code, status["state"], status["in_flight"], status["written_ok"]) == (3, "running", 1, 0)
    finally:
        up.sandbox.release_posts()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    finished = json.loads(out)
    assert finished["state"] == "done"
    assert (finished["written_ok"], finished["records"], finished["in_flight"]) == (1, 100, 0)


def test_two_jobs_on_one_stack_each_finish_on_their_own_counts(up: LocalSession, tmp_path: Path) -> None:
    up.sandbox.set_faults(Faults({}, latency_ms=300))
    small, large = tmp_path / "tiktok_small.csv", tmp_path / "tiktok_large.csv"
    small.write_text("username\n" + "".join(f"small_{n}\n" for n in range(5)), encoding="utf-8")
    rows = 3 * ROWS_PER_INVOCATION + 300  # the small job arrives while these are enqueued
    large.write_text("username\n" + "".join(f"large_{n:04d}\n" for n in range(rows)), encoding="utf-8")
    env = os.environ | {"TRAWL_HOME": os.environ["TRAWL_HOME"]}

    def start(path: Path) -> subprocess.Popen[str]:
        command = [
            TRAWL,
            "run",
            str(path),
            "--platform",
            "tiktok",
            "--json",
            "--data-dir",
            str(tmp_path / path.stem),
        ]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    try:
        big = start(large)
        time.sleep(1.0)  # the large job is on its way when the small one arrives
        little = start(small)
        out, err = little.communicate(timeout=120)
        assert little.returncode == 0, err
        assert big.poll() is None, "the small job waited for the large one"
        big_out, big_err = big.communicate(timeout=300)
        assert big.returncode == 0, big_err
    finally:
        up.sandbox.set_faults(Faults({}))
    first, second = json.loads(out), json.loads(big_out)
    assert (first["enqueued"], first["written_ok"], first["state"]) == (5, 5, "done")
    assert (second["enqueued"], second["written_ok"], second["state"]) == (rows, rows, "done")


def test_a_settled_job_is_announced_on_eventbridge(up: LocalSession, tmp_path: Path) -> None:
    endpoint = up.stack.endpoint
    sqs, events = endpoint.client("sqs"), endpoint.client("events")
    url = sqs.create_queue(QueueName="job-finished-test")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["trawl"], "detail-type": ["Job Finished"]}
    events.put_rule(Name="job-finished-test", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="job-finished-test", Targets=[{"Id": "test", "Arn": arn}])

    ran = _run(tmp_path, "tiktok_announced.csv", "username\nannounced_a\nghost_announced\n")

    deadline = time.monotonic() + 30
    announced: list[dict[str, Any]] = []
    while not any(e["detail"]["job_id"] == ran["job_id"] for e in announced):
        assert time.monotonic() < deadline, announced
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        announced += [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    [event] = [e for e in announced if e["detail"]["job_id"] == ran["job_id"]]
    assert (event["source"], event["detail-type"]) == ("trawl", "Job Finished")
    detail = event["detail"]
    assert (detail["state"], detail["written_ok"], detail["written_permanent"]) == ("done", 1, 1)
    assert detail["failure_reasons"] == {"not_found": 1} and detail["stack"] == up.stack.name
