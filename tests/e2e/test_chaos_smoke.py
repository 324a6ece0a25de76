"""The chaos harness (bench/chaos.py) at smoke size: ~40 items through the whole local pipeline
with ~20% injected upstream faults, latency spikes, one worker crashing mid-batch and a re-drive
of the DLQs with faults off. Every row accounted for, one record per item, nothing lost or
doubled, queues empty; items whose upstream calls always fault did go through the DLQ."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import pytest

from bench.chaos import (
    ChaosConfig,
    ChaosInput,
    ChaosReport,
    Expected,
    calls_per_item,
    check_ledger,
    check_records,
    check_refetches,
    make_inputs,
    render,
    run_chaos,
)
from trawl.sandbox import Call, Faults, SandboxServer
from trawl.stack.jobs import JobSummary

SMOKE = ChaosConfig(items=40, doomed=2, timeout_s=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ChaosReport:
    return run_chaos(SMOKE, tmp_path_factory.mktemp("chaos"))


def test_chaos_run_keeps_every_guarantee(report: ChaosReport) -> None:
    assert report.violations == [], render(report)


def test_every_valid_item_ends_as_one_record(report: ChaosReport) -> None:
    jobs = {f"{j.platform}/{j.kind}": j for j in report.jobs}

    assert set(jobs) == {
        "tiktok/account",
        "tiktok/videos",
        "tokopedia/product",
        "shopee/product",
        "lazada/product",
    }
    assert sum(j.enqueued for j in report.jobs) == SMOKE.items
    assert all(j.rows == j.enqueued + j.duplicates + j.rejected for j in report.jobs)
    assert all(j.duplicates >= 1 and j.rejected >= 1 for j in report.jobs)
    assert all(j.lost == 0 and j.doubled == 0 and j.refetched == 0 for j in report.jobs)
    assert all(j.ledger_items == j.enqueued for j in report.jobs)
    # one object per item, except tiktok/videos: videos_95's 95 videos + the ghost's status record
    assert all(j.objects == j.enqueued for k, j in jobs.items() if k != "tiktok/videos")
    assert (jobs["tiktok/videos"].ok, jobs["tiktok/videos"].permanent) == (95, 1)
    assert all(j.permanent >= 1 for j in report.jobs)  # ghost users and notfound products


def test_the_chaos_really_happened(report: ChaosReport) -> None:
    retryable = sum(n for kind, n in report.faults.items() if kind not in ("requests", "slow"))

    assert retryable >= 5 and report.faults.get("slow", 0) >= 1, report.faults
    assert report.crash is not None and 1 <= report.crash.handled < len(report.crash.receipt_handles)
    assert report.fast_forwarded >= 1
    # the doomed items (and any others that failed twice) went through the DLQ and came back
    assert sum(j.dead_lettered for j in report.jobs) >= SMOKE.doomed
    assert sum(report.redriven.values()) == sum(j.dead_lettered for j in report.jobs)


def test_inputs_are_deterministic_and_doomed_items_always_fault() -> None:
    faults = Faults.parse(SMOKE.faults, seed=SMOKE.seed)
    first, again = make_inputs(SMOKE, faults), make_inputs(SMOKE, faults)

    assert [i.rows for i in first] == [i.rows for i in again]
    doomed = {key for item in first for key in item.doomed}
    assert len(doomed) == SMOKE.doomed
    assert all(set(item.doomed) <= set(item.expected) for item in first)


def test_harness_catches_a_lost_record() -> None:
    """The checks can fail: a record deleted behind the pipeline's back is reported as lost."""
    item = ChaosInput("tiktok", "account", "x.csv", ["alice", "bob"])
    item.expected = {
        "alice": Expected("alice", "alice", "ok", 2, "r2"),
        "bob": Expected("bob", "bob", "ok", 3, "r3"),
    }
    alice = {
        "item_key": "alice",
        "target": "alice",
        "status": "ok",
        "source": {"row": 2},
        "context": {"ref": "r2"},
    }
    violations: list[str] = []

    lost, _ = check_records(item, [alice, alice | {"status": "not_found"}], violations, "x.csv")

    assert lost == 1
    assert any("bob has no record (lost)" in v for v in violations)
    assert any("alice wanted one ok record" in v for v in violations)


def test_a_slow_call_is_answered_late_but_answered() -> None:
    """The latency spike the chaos run injects: the call waits slow_ms more, then succeeds."""
    with SandboxServer(faults=Faults.parse("slow=1.0", slow_ms=400)) as sandbox:
        started = time.monotonic()
        answer = httpx.get(
            f"{sandbox.url}/public/check",
            params={"username": "alice"},
            headers={"X-API-KEY": sandbox.tikapi_key},
            timeout=5,
        )
        took = time.monotonic() - started

    assert answer.status_code == 200 and answer.json()["userInfo"]["user"]["uniqueId"] == "alice"
    assert took >= 0.4
    assert sandbox.stats == {"requests": 1, "slow": 1}


def _alice_and_bob() -> ChaosInput:
    item = ChaosInput("tiktok", "account", "x.csv", ["alice", "bob"])
    item.expected = {
        "alice": Expected("alice", "alice", "ok", 2, "r2"),
        "bob": Expected("bob", "bob", "not_found", 3, "r3"),
    }
    return item


def test_harness_catches_an_item_under_two_keys() -> None:
    item = _alice_and_bob()
    alice = {
        "item_key": "alice",
        "target": "alice",
        "status": "ok",
        "source": {"row": 2},
        "context": {"ref": "r2"},
    }
    bob = {
        "item_key": "bob",
        "target": "bob",
        "status": "not_found",
        "source": {"row": 3},
        "context": {"ref": "r3"},
    }
    violations: list[str] = []

    lost, doubled = check_records(item, [alice, alice | {"item_key": "Alice"}, bob], violations, "x.csv")

    assert (lost, doubled) == (0, 1)
    assert any("alice wanted one ok record" in v for v in violations)


def test_harness_catches_a_ledger_that_miscounts_or_misfiles() -> None:
    item = _alice_and_bob()
    summary = JobSummary(
        job_id="j",
        input_key="input/tiktok/account/x.csv",
        platform="tiktok",
        kind="account",
        status="enqueued",
        message=None,
        rows=2,
        enqueued=2,
        duplicates=0,
        rejected=0,
        written_ok=2,
        written_permanent=0,
        dead_lettered=0,
        in_flight=0,
        output_prefix=None,
        data_dir=None,
        state="done",
        records=2,
    )
    rows = {"alice": {"outcome": "ok"}, "bob": {"outcome": "ok"}}
    violations: list[str] = []

    check_ledger(item, summary, rows, 2, violations, "x.csv")

    assert any("'ok': 2" in v and "'permanent': 0" in v for v in violations), violations
    assert any("1 ledger rows differ" in v and "('bob', 'ok', 'not_found')" in v for v in violations)


def test_harness_catches_a_fetch_after_the_item_settled() -> None:
    item = _alice_and_bob()
    rows = {
        "alice": {"outcome": "ok", "info": {"updated_at": "2026-12-01T10:00:00+00:00"}},
        "bob": {"outcome": "not_found", "info": {"updated_at": "2026-12-01T10:00:00+00:00"}},
    }
    settle = dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp()
    calls = [
        Call(settle - 1, "GET", "/public/check", "alice"),
        Call(settle - 0.5, "GET", "/public/check", "bob"),
        Call(settle + 0.2, "GET", "/public/check", "bob"),
    ]
    violations: list[str] = []

    assert check_refetches(item, "j", rows, calls, violations, "x.csv") == 1
    assert any("['bob']" in v for v in violations), violations
    assert calls_per_item(calls, [item]) == [1, 2]
