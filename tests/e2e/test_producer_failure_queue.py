"""When SQS refuses the producer's sends for longer than every retry: `trawl run` says the job
failed with what AWS answered and exits non-zero, no row is filed as a reject for it, the event
waits in the producer's failure queue, and `trawl replay`, once SQS answers again, finishes the
job from its checkpoint. The stack plays `trawl up`; its functions reach SQS through an
endpoint that refuses SendMessageBatch as SQS does for a KMS key the caller may not use."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes import FaultyAws, ProxiedCall
from trawl.cli import app
from trawl.local.session import LocalSession, local_session, up_state

runner = CliRunner()


# The module's `trawl up` stack is found through this TRAWL_HOME (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("module_trawl_home")


@dataclass
class Refusing:
    """The SQS operations the proxy refuses (the test fixes the "key policy" by emptying it)."""

    operations: set[str] = field(default_factory=lambda: {"SendMessageBatch"})

    def __call__(self, call: ProxiedCall) -> str | None:
        return "refuse" if call.service == "sqs" and call.operation in self.operations else None


@pytest.fixture(scope="module")
def refusing() -> Refusing:
    return Refusing()


@pytest.fixture(scope="module")
def sqs(refusing: Refusing) -> Iterator[FaultyAws]:
    with FaultyAws("http://127.0.0.1:1", refusing) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def up(home: Path, sqs: FaultyAws) -> Iterator[LocalSession]:
    with local_session(worker_env={"AWS_ENDPOINT_URL_SQS": sqs.url}) as session:
        sqs.upstream = session.aws.endpoint.url or ""
        session.runtime.watch_uploads(interval_s=0.2)
        state = up_state(session)
        (home / "up.json").write_text(json.dumps(state.__dict__), encoding="utf-8")
        yield session


def test_refused_sends_fail_the_job_and_a_replay_finishes_it(
    up: LocalSession, sqs: FaultyAws, refusing: Refusing, tmp_path: Path
) -> None:
    csv_path = tmp_path / "tiktok_refused.csv"
    csv_path.write_text("username\nrefused_a\n!!\nrefused_b\nrefused_c\n", encoding="utf-8")
    data = tmp_path / "data"

    ran = runner.invoke(app, ["run", str(csv_path), "--json", "--data-dir", str(data)])

    assert ran.exit_code == 1, ran.output
    summary = json.loads(ran.stdout)
    assert summary["state"] == "failed"
    assert (
        "KmsAccessDenied" in summary["message"]
        and "does not have access to the KMS key" in summary["message"]
    )
    # The job stands where its next attempt resumes: the start, as no checkpoint was reached.
    assert (summary["rows"], summary["rejected"], summary["enqueued"]) == (0, 0, 0)
    assert "resumes from the first row" in summary["message"]
    # No row was filed as a reject for SQS's refusal (there is no rejects.csv before a checkpoint).
    assert not (data / "jobs" / summary["job_id"] / "rejects.csv").exists()
    assert sqs.refused >= 3 * 4  # three attempts by Lambda, each trying its sends four times

    dry = runner.invoke(app, ["replay", "--dry-run"])
    assert dry.exit_code == 0 and "would replay 1 producer events" in dry.stdout
    assert "input/tiktok/account/tiktok_refused.csv" in dry.stdout and "KmsAccessDenied" in dry.stdout

    refusing.operations = set()  # the key policy is fixed
    replayed = runner.invoke(app, ["replay"])
    assert replayed.exit_code == 0 and "replayed 1 producer events" in replayed.stdout

    job_id = summary["job_id"]
    deadline = time.monotonic() + 60
    while (status := runner.invoke(app, ["status", job_id, "--json"])).exit_code != 0:
        assert time.monotonic() < deadline, status.stdout
        time.sleep(0.5)
    done = json.loads(status.stdout)
    assert (done["state"], done["enqueued"], done["rejected"], done["written_ok"]) == ("done", 3, 1, 3)
    s3 = up.stack.endpoint.client("s3")
    rejects = s3.get_object(Bucket=up.stack.bucket, Key=f"jobs/{job_id}/rejects.csv")["Body"].read().decode()
    assert [(r["row"], r["value"]) for r in csv.DictReader(rejects.splitlines())] == [("3", "!!")]
    assert (
        runner.invoke(app, ["replay", "--dry-run"]).stdout.strip().endswith("would replay 0 producer events")
    )
