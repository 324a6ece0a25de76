"""The producer under failure, run the way Lambda runs it: asynchronous invocations through the
local stand-in, which retries a failed one with the same request id and sends it to the failure
queue when the retries run out. No workers run, so the work queue shows exactly what was sent.

A fault plan fails the producer at seeded random points of its AWS calls, which reach AWS through
a proxy (tests/fakes.py, FaultyAws): S3 or SQS calls are refused, or the invocation dies there:
its execution environment's process is killed in the middle of that call."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from models import JobManifest, WorkItem
from tests.fakes import FaultyAws, ProxiedCall, Verdict
from trawl.local.session import LocalSession, local_session
from trawl.stack.jobs import load_manifest
from trawl.stack.submit import job_id_of

ROWS = 3_000
ROWS_PER_INVOCATION = "600"  # five invocations, four continuations


@dataclass
class FaultPlan:
    """Fails the producer's AWS calls at seeded points, counted across every invocation."""

    faults: dict[int, str]  # call number -> "s3", "sqs" or "die"
    die_at: dict[int, int] = field(default_factory=dict)  # invocation number -> its call to die at
    calls: int = 0
    invocation: int = 0
    calls_here: int = 0  # in this invocation
    failing: dict[str, int] = field(default_factory=dict)  # service -> calls left to fail
    dead: bool = False
    fired: list[str] = field(default_factory=list)

    @classmethod
    def seeded(cls, seed: int, expected_calls: int) -> FaultPlan:
        rng = random.Random(seed)
        points = rng.sample(range(2, expected_calls), rng.choice((1, 2)))
        return cls({point: rng.choice(("s3", "sqs", "die")) for point in points})

    def new_invocation(self) -> None:
        self.dead = False
        self.invocation += 1
        self.calls_here = 0

    def decide(self, call: ProxiedCall) -> Verdict:
        """What becomes of the producer's next AWS call."""
        service, operation = call.service, call.operation
        if self.dead:
            return "die"  # a call of the dead process still on its way: it never gets an answer
        self.calls += 1
        self.calls_here += 1
        kind = self.faults.pop(self.calls, None)
        if self.die_at.get(self.invocation) == self.calls_here:
            kind = "die"
        if kind == "die":
            self.dead = True
            self.fired.append(f"died at call {self.calls} ({operation})")
            return "die"
        if kind is not None:
            # Long enough to outlast the producer's own four tries of a send, on four threads.
            self.failing["sqs" if kind == "sqs" else "s3"] = 20 if kind == "sqs" else 2
            self.fired.append(f"{kind} errors from call {self.calls} ({operation})")
        if service == "sqs" and operation != "SendMessageBatch":
            return None
        left = self.failing.get(service, 0)
        if left:
            self.failing[service] = left - 1
            return "refuse"
        return None


@dataclass
class Plans:
    """The plan in force (each test sets its own), and the bodies SQS said it accepted."""

    current: FaultPlan = field(default_factory=lambda: FaultPlan({}))
    accepted: list[str] = field(default_factory=list)


def _accepted(plans: Plans, call: ProxiedCall, status: int, body: bytes) -> None:
    """Record what SQS answered "Successful" to: reading 3,000 messages back from the embedded
    queue would cost more than all the rest of a run (each receive scans the queue)."""
    if call.service != "sqs" or call.operation != "SendMessageBatch" or status != 200:
        return
    sent = {e["Id"]: e["MessageBody"] for e in json.loads(call.body)["Entries"]}
    plans.accepted += [sent[ok["Id"]] for ok in json.loads(body).get("Successful", [])]


@pytest.fixture(scope="module")
def plans() -> Plans:
    return Plans()


@pytest.fixture(scope="module")
def local(plans: Plans) -> Iterator[LocalSession]:
    with local_session(
        workers=False,
        retry_delays_s=(0.02, 0.05),
        worker_env={"MAX_ROWS_PER_INVOCATION": ROWS_PER_INVOCATION, "SEND_THREADS": "4"},
    ) as session:
        runtime = session.runtime
        with FaultyAws(
            session.aws.endpoint.url or "",
            lambda call: plans.current.decide(call),
            lambda_upstream=runtime.invoke_server.url,
            on_die=runtime.crash_producer,
            on_answer=lambda call, status, body: _accepted(plans, call, status, body),
        ) as proxy:
            # The producer's AWS calls, the Invoke of its continuations included, go through the proxy.
            runtime.producer_env_overrides = {
                "AWS_ENDPOINT_URL": proxy.url,
                "AWS_ENDPOINT_URL_LAMBDA": proxy.url,
            }
            runtime.on_producer_invocation.append(lambda invocation: plans.current.new_invocation())
            yield session


def _input(seed: int) -> tuple[bytes, set[str], set[int], int]:
    """The file; the usernames it must enqueue; the rows it rejects; its duplicate rows."""
    lines, wanted, refused, duplicates = ["username,team"], set(), set(), 0
    for row in range(2, ROWS + 2):
        if row % 97 == 0:
            value = f"bad name {row}"
            refused.add(row)
        else:
            # Every 50th row names an earlier row's account again, spelled as a user might.
            name = f"s{seed}_{row - 7 if row % 50 == 0 else row:05d}"
            value = f"@{name.upper()}" if row % 50 == 0 else name
            duplicates += name in wanted
            wanted.add(name)
        lines.append(f"{value},t{row % 5}")
    return ("\n".join(lines) + "\n").encode(), wanted, refused, duplicates


def _settled(local: LocalSession, job_id: str, timeout_s: float = 60) -> JobManifest:
    deadline = time.monotonic() + timeout_s
    while True:
        found = load_manifest(local.stack, job_id)
        if found and found.status in ("enqueued", "failed") and not local.runtime.producer_calls.busy:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


@pytest.mark.parametrize("seed", range(20))
def test_every_row_is_enqueued_whatever_fails_where(local: LocalSession, plans: Plans, seed: int) -> None:
    body, wanted, refused, duplicates = _input(seed)
    # About 70 calls an invocation (S3 reads and writes, 60 SendMessageBatch, an Invoke), five of them.
    plan = plans.current = FaultPlan.seeded(seed, expected_calls=250)
    plans.accepted.clear()
    key = f"input/tiktok/account/failing-{seed}.csv"
    s3 = local.stack.endpoint.client("s3")
    s3.put_object(Bucket=local.stack.bucket, Key=key, Body=body)
    local.runtime.deliver(local.runtime.upload_event(local.stack.bucket, key))

    m = _settled(local, job_id_of(local.stack, key))

    assert plan.fired, f"no fault fired in {plan.calls} calls"
    assert m.status == "enqueued", (plan.fired, m.message)
    assert (m.rows_read, m.rejected, m.duplicates) == (ROWS, len(refused), duplicates), plan.fired
    assert m.rows_read == m.enqueued + m.duplicates + m.rejected
    assert m.enqueued == len(wanted)
    sent = [WorkItem.model_validate_json(body).item_key for body in plans.accepted]
    # A resumed invocation sends the rows after its checkpoint again: harmless (records are
    # idempotent), but none may be missing.
    assert set(sent) == wanted, plan.fired
    text = s3.get_object(Bucket=local.stack.bucket, Key=f"jobs/{m.job_id}/rejects.csv")["Body"].read()
    rows = csv.DictReader(io.StringIO(text.decode()))
    assert sorted(int(r["row"]) for r in rows) == sorted(refused)  # each reject once
    left = s3.list_objects_v2(Bucket=local.stack.bucket, Prefix=f"jobs/{m.job_id}/checkpoint/")
    assert left.get("KeyCount", 0) == 0


def test_a_continuation_that_fails_once_resumes_from_its_checkpoint(
    local: LocalSession, plans: Plans
) -> None:
    body, wanted, _, _ = _input(99)
    # The second invocation (the first continuation) dies at its 20th AWS call, after it has sent
    # some of its 600 rows.
    plan = plans.current = FaultPlan({}, die_at={2: 20})
    plans.accepted.clear()
    key = "input/tiktok/account/continuation-fails.csv"
    local.stack.endpoint.client("s3").put_object(Bucket=local.stack.bucket, Key=key, Body=body)
    local.runtime.deliver(local.runtime.upload_event(local.stack.bucket, key))

    m = _settled(local, job_id_of(local.stack, key))

    assert len(plan.fired) == 1 and plan.fired[0].startswith("died at call")
    # Six invocations read the file (five of 600 rows, and one that finds it ended), plus one retry.
    assert (m.status, m.enqueued, m.invocations) == ("enqueued", len(wanted), 7)
    # Lambda's retry of the continuation (the same request id) ran, and finished the job's share.
    assert sorted(m.attempts.values()) == [1, 1, 1, 1, 1, 2]
    sent = Counter(WorkItem.model_validate_json(body).item_key for body in plans.accepted)
    assert set(sent) == wanted
    # Resumed, not restarted: the first invocation's rows (up to the checkpoint) went out once;
    # only rows the dead attempt had sent after it went out twice.
    first_share = {f"s99_{row:05d}" for row in range(2, 602)} & wanted
    assert all(sent[k] == 1 for k in first_share)
    twice = [k for k, n in sent.items() if n > 1]
    assert 0 < len(twice) < 600
