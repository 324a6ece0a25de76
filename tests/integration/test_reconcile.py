"""Items that leave the queues with no worker seeing their end do not leave a job `running`
forever: the reconcile pass (the ledger function's schedule, run here as if due at a given
time) finds them in the DLQ, or marks them stale once the work queue can no longer hold them,
and `trawl status --items` says which are which. No workers run: the test plays what becomes of
each message."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.helpers import count_requests, seed_job
from trawl.cli import app
from trawl.local.session import LocalSession, local_session, up_state
from trawl.stack.jobs import JobSummary, job_summary
from trawl.stack.submit import job_id_of

runner = CliRunner()


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSession]:
    home = tmp_path_factory.mktemp("trawl-home")
    with local_session(workers=False) as session:
        state = up_state(session)
        (home / "up.json").write_text(json.dumps(state.__dict__), encoding="utf-8")
        os.environ["TRAWL_HOME"] = str(home)
        yield session


def _enqueued(local: LocalSession, name: str, usernames: list[str]) -> str:
    key = f"input/tiktok/account/{name}"
    s3 = local.stack.endpoint.client("s3")
    s3.put_object(
        Bucket=local.stack.bucket, Key=key, Body=("username\n" + "\n".join(usernames) + "\n").encode()
    )
    local.runtime.deliver(local.runtime.upload_event(local.stack.bucket, key))
    job_id = job_id_of(local.stack, key)
    _until(local, job_id, lambda s: s.status == "enqueued")
    return job_id


def _until(local: LocalSession, job_id: str, done: Any, timeout_s: float = 30) -> JobSummary:
    deadline = time.monotonic() + timeout_s
    while True:
        found = job_summary(local.stack, job_id)
        if found is not None and done(found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def _take(local: LocalSession, job_id: str) -> dict[str, dict[str, Any]]:
    """Every message of the job off the work queue: item_key -> (body, receipt)."""
    sqs, url = local.stack.endpoint.client("sqs"), local.stack.queue_url("tiktok")
    found: dict[str, dict[str, Any]] = {}
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get(
        "Messages", []
    ):
        for m in messages:
            body = json.loads(m["Body"])
            if body["job_id"] == job_id:
                found[body["item_key"]] = m
    return found


def test_unseen_items_are_found_in_the_dlq_or_marked_stale(local: LocalSession) -> None:
    job_id = _enqueued(local, "reconcile.csv", ["crashed_one", "garbled_one", "expired_one"])
    sqs = local.stack.endpoint.client("sqs")
    dlq, work = local.stack.dlq_url("tiktok"), local.stack.queue_url("tiktok")
    taken = _take(local, job_id)
    # crashed_one: its last receive crashed, so SQS moved it to the DLQ with no worker the wiser.
    sqs.send_message(QueueUrl=dlq, MessageBody=taken["crashed_one"]["Body"])
    # garbled_one: a body no worker could parse, dead-lettered after its receives.
    sqs.send_message(
        QueueUrl=dlq, MessageBody=json.dumps({"job_id": job_id, "item_key": "garbled_one", "v": 9})
    )
    for m in (taken["crashed_one"], taken["garbled_one"]):
        sqs.delete_message(QueueUrl=work, ReceiptHandle=m["ReceiptHandle"])
    # expired_one: deleted by the work queue at the end of its retention, in no DLQ.
    sqs.delete_message(QueueUrl=work, ReceiptHandle=taken["expired_one"]["ReceiptHandle"])

    assert _until(local, job_id, lambda s: True).state == "running"  # nothing tells the ledger
    now = dt.datetime.now(dt.UTC)
    local.runtime.reconcile(now)
    found = _until(local, job_id, lambda s: s.dead_lettered == 2)
    assert (found.state, found.in_flight, found.failure_reasons) == (
        "running",
        1,
        {"unseen": 1, "malformed_message": 1},
    )
    local.runtime.reconcile(now)  # a second pass changes nothing
    assert _until(local, job_id, lambda s: True).dead_lettered == 2

    # Past the work queue's retention (4 days) nothing of the job can be in it any more.
    local.runtime.reconcile(now + dt.timedelta(days=4, hours=2))
    found = _until(local, job_id, lambda s: s.stale == 1)
    assert (found.state, found.in_flight, found.dead_lettered) == ("failed", 0, 2)

    status = runner.invoke(app, ["status", job_id, "--items", "--json"])
    assert status.exit_code == 1
    items = {i["item_key"]: (i["outcome"], i["reason"]) for i in json.loads(status.stdout)["items"]}
    assert items == {
        "crashed_one": ("dead_lettered", "unseen"),
        "garbled_one": ("dead_lettered", "malformed_message"),
        "expired_one": ("stale", "unseen"),
    }
    human = runner.invoke(app, ["status", job_id, "--items"]).stdout
    assert "stale 1" in human and "expired_one  stale  unseen" in human
    # Re-driving brings the two dead-lettered back to the work queue, as for any other.
    moved = runner.invoke(app, ["redrive", "tiktok", "--job", job_id])
    assert moved.exit_code == 0 and "moved 2 messages" in moved.stdout, moved.output


def test_status_makes_as_many_requests_for_10000_items_as_for_100(
    local: LocalSession, tmp_path: Path
) -> None:
    small, large = seed_job(local, 100), seed_job(local, 10_000)
    with count_requests() as counted:
        assert runner.invoke(app, ["status", small]).exit_code == 0
    for_small = list(counted)
    with count_requests() as counted:
        assert runner.invoke(app, ["status", large]).exit_code == 0
    assert list(counted) == for_small and len(for_small) <= 3, for_small
