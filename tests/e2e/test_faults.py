"""Failure semantics end to end: with the sandbox injecting 429s, 500s and timeouts, every valid
item ends as exactly one record or in the DLQ after maxReceiveCount; none lost, none doubled.
The 429s are waited out within their invocation; the 500s dead-letter some items."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models import WorkItem
from tests.helpers import manifest, records, run_csv
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Faults
from trawl.stack.jobs import job_summary


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSession]:
    faults = Faults.parse("429=0.2,500=0.5,timeout=0.02", seed=7)
    with local_session(faults=faults, parameters={"MaxReceiveCount": "2"}) as session:
        yield session


def _drain_dlq(local: LocalSession) -> list[WorkItem]:
    sqs = local.stack.endpoint.client("sqs")
    items: list[WorkItem] = []
    while messages := sqs.receive_message(
        QueueUrl=local.stack.dlq_url("tiktok"), MaxNumberOfMessages=10, VisibilityTimeout=300
    ).get("Messages", []):
        items += [WorkItem.model_validate_json(m["Body"]) for m in messages]
    return items


def test_every_item_is_written_once_or_dead_lettered(local: LocalSession, tmp_path: Path) -> None:
    names = [f"fault_user{n:02d}" for n in range(40)] + ["ghost_faulty"]
    text = "username\n" + "\n".join([*names, "@Fault_User01", "fault_user02"]) + "\n"
    job_id = run_csv(local, tmp_path, "faulty.csv", text, "tiktok", "account")

    m = manifest(local, job_id)
    assert (m.enqueued, m.duplicates) == (41, 2)
    written = records(local, job_id)
    dead = [item.item_key for item in _drain_dlq(local) if item.job_id == job_id]

    assert len(dead) == len(set(dead)), "an item was dead-lettered twice"
    assert not set(dead) & set(written), "an item was both written and dead-lettered"
    assert set(dead) | set(written) == set(names), "an item was lost"
    assert dead, "with 50% 500s and maxReceiveCount 2 some items must reach the DLQ"
    summary = job_summary(local.stack, job_id)
    assert summary is not None and summary.throttled_calls > 0  # 429s came, and were waited out
    assert summary.calls > summary.throttled_calls
    assert len(written) > len(names) // 2
    assert local.sandbox.stats.get("429", 0) > 0 and local.sandbox.stats.get("500", 0) > 0


def test_a_message_sent_again_is_not_fetched_again(local: LocalSession, tmp_path: Path) -> None:
    local.sandbox.set_faults(Faults.parse(""))
    job_id = run_csv(local, tmp_path, "twice-delivered.csv", "username\nrepeat_me\n", "tiktok", "account")
    [first] = records(local, job_id).values()
    fetched = local.sandbox.calls()[("GET", "/public/check", "repeat_me")]

    sqs = local.stack.endpoint.client("sqs")
    body = WorkItem(
        job_id=job_id,
        job_date=manifest(local, job_id).job_date,
        platform="tiktok",
        kind="account",
        item_key="repeat_me",
        target="repeat_me",
        source=first["source"],
        context={},
    ).model_dump_json()
    for _ in range(2):  # the same item sent twice more (a producer resumed, a re-drive of a copy)
        sqs.send_message(QueueUrl=local.stack.queue_url("tiktok"), MessageBody=body)
    deadline = time.monotonic() + 60
    while not local.runtime.idle():
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # The ledger holds it settled: it was not fetched again, its record is untouched, its count unchanged.
    assert local.sandbox.calls()[("GET", "/public/check", "repeat_me")] == fetched == 1
    [again] = records(local, job_id).values()
    assert again == first
    summary = job_summary(local.stack, job_id)
    assert summary is not None and (summary.enqueued, summary.written_ok, summary.in_flight) == (1, 1, 0)
