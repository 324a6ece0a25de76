"""After the upload: a job whose upstream always fails ends in the DLQ, `trawl status` says so,
the sandbox is healed on the running stack, `trawl redrive` brings every item back, and the job
ends done with one record per item."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import records
from trawl.cli import app
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Faults
from trawl.stack.running import UpState

runner = CliRunner()


# The module's `trawl up` stack is found through this TRAWL_HOME (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("module_trawl_home")


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[LocalSession]:
    """What `trawl up` holds, in this process: a stack other commands find through the state file."""
    with local_session(faults=Faults.parse("500=1.0"), parameters={"MaxReceiveCount": "2"}) as session:
        session.runtime.watch_uploads(interval_s=0.2)
        state = UpState(session.aws.endpoint.url or "", session.sandbox.url, session.stack.name, os.getpid())
        (home / "up.json").write_text(json.dumps(state.__dict__), encoding="utf-8")
        yield session


def test_dead_lettered_job_is_redriven_to_done(up: LocalSession, tmp_path: Path) -> None:
    names = ["redrive_a", "redrive_b", "redrive_c", "ghost_redrive"]
    csv_path = tmp_path / "tiktok_redrive.csv"
    csv_path.write_text("username\n" + "\n".join(names) + "\n", encoding="utf-8")

    ran = runner.invoke(app, ["run", str(csv_path), "--json", "--data-dir", str(tmp_path / "data")])
    summary = json.loads(ran.stdout)
    assert ran.exit_code == 1, ran.output  # items ended in the DLQ
    assert (summary["enqueued"], summary["dead_lettered"], summary["written_ok"]) == (4, 4, 0)
    job_id = summary["job_id"]

    status = runner.invoke(app, ["status", job_id, "--json"])
    assert status.exit_code == 1
    got = json.loads(status.stdout)
    assert (got["dead_lettered"], got["in_flight"], got["state"]) == (4, 0, "failed")
    human = runner.invoke(app, ["status", job_id]).stdout
    assert f"job {job_id}  tiktok/account  input/tiktok/account/tiktok_redrive.csv  failed" in human
    assert "items: ok 0 · permanent 0 · dead-lettered 4 · in flight 0" in human
    assert "failure reasons: upstream_5xx 8" in human  # two receives each (MaxReceiveCount 2)

    healed = runner.invoke(app, ["faults", ""])
    assert healed.exit_code == 0 and "none" in healed.stdout
    dry = runner.invoke(app, ["redrive", "tiktok", "--job", job_id, "--dry-run"])
    assert "would move 4" in dry.stdout
    moved = runner.invoke(app, ["redrive", "tiktok", "--job", job_id])
    assert moved.exit_code == 0 and "moved 4 messages" in moved.stdout, moved.output

    deadline = time.monotonic() + 60
    while (status := runner.invoke(app, ["status", job_id, "--json"])).exit_code != 0:
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.5)
    got = json.loads(status.stdout)
    assert (got["written_ok"], got["written_permanent"], got["dead_lettered"], got["state"]) == (
        3,
        1,
        0,
        "done",
    )
    assert (
        f"job {job_id}  tiktok/account  input/tiktok/account/tiktok_redrive.csv  done"
        in runner.invoke(app, ["status", job_id]).stdout
    )
    out = records(up, job_id)
    assert set(out) == set(names)
    s3 = up.stack.endpoint.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=up.stack.bucket, Prefix="output/")["Contents"]]
    assert len([k for k in keys if f"/{job_id}-" in k]) == len(names)  # no duplicate objects


def test_status_lists_recent_jobs_and_rejects_unknown_ones(up: LocalSession, tmp_path: Path) -> None:
    # A job of its own (a file the producer refuses, so nothing reaches the queues the other
    # tests of this module count): the tests of a module may run on different workers.
    refused = tmp_path / "tiktok_no_column.csv"
    refused.write_text("name\nalice\n", encoding="utf-8")
    ran = runner.invoke(app, ["run", str(refused), "--json", "--data-dir", str(tmp_path / "data")])
    assert ran.exit_code == 1 and json.loads(ran.stdout)["state"] == "failed", ran.output
    listed = runner.invoke(app, ["status"])
    assert listed.exit_code == 0
    heading, *jobs, hint = listed.stdout.strip().splitlines()
    assert heading.split() == [
        "job",
        "created",
        "(UTC)",
        "platform/kind",
        "state",
        "rows",
        "enqueued",
        "input",
    ]
    assert jobs and all(line.split()[3] == "tiktok/account" for line in jobs)
    assert hint.endswith("trawl status JOB --items")
    missing = runner.invoke(app, ["status", "ffffffffffffffff"])
    assert missing.exit_code == 2 and "no job ffffffffffffffff" in missing.output


def test_trawl_up_runs_until_stopped(tmp_path: Path) -> None:
    env = os.environ | {"TRAWL_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trawl.cli", "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "up.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "trawl up did not start"
            time.sleep(0.2)
        status = subprocess.run(
            [sys.executable, "-m", "trawl.cli", "status"], env=env, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0 and "no jobs yet" in status.stdout
        accounts = tmp_path / "tiktok_up_log.csv"
        accounts.write_text("username\nlogged_one\nghost_logged\n", encoding="utf-8")
        command = [sys.executable, "-m", "trawl.cli", "run", str(accounts), "--json"]
        ran = subprocess.run(
            [*command, "--data-dir", str(tmp_path / "data")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        job_id = json.loads(ran.stdout)["job_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=30)
    assert not (tmp_path / "up.json").exists()
    # The job's `Job Finished` event, in the log of `trawl up`.
    assert f"job {job_id} finished done: tiktok/account" in log.decode(), log.decode()[-2000:]
