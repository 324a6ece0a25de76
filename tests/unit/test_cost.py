"""The cost model (trawl/analysis/cost.py) on numbers that can be checked by hand, and `trawl cost`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trawl.analysis.cost import (
    Estimate,
    Prices,
    Workload,
    compare,
    deliveries_per_message,
    step_functions_estimate,
    trawl_estimate,
    worker_gb_seconds_per_item,
)
from trawl.cli import app

PRICES = Prices()


def _line(estimate: Estimate, starts: str) -> float:
    [line] = [line for line in estimate.lines if line.what.startswith(starts)]
    return line.quantity


def test_sqs_requests_without_retries_are_three_per_batch_of_ten() -> None:
    # 1,000 items: 100 SendMessageBatch + 100 receives + 100 deletes, no visibility changes
    estimate = trawl_estimate(Workload(items=1_000, retry_rate=0.0))

    assert _line(estimate, "SendMessageBatch") == 100
    assert _line(estimate, "ReceiveMessage") == 100
    assert _line(estimate, "DeleteMessageBatch") == 100
    assert _line(estimate, "ChangeMessageVisibility") == 0
    assert estimate.by_service()["SQS"] == pytest.approx(300 * 0.40 / 1e6)


def test_retries_add_receives_and_visibility_changes() -> None:
    # retry rate 0.5: every message is delivered 2 times on average -> 2,000 deliveries
    estimate = trawl_estimate(Workload(items=1_000, retry_rate=0.5))

    assert deliveries_per_message(0.5) == 2.0
    assert _line(estimate, "ReceiveMessage") == 200
    assert _line(estimate, "ChangeMessageVisibility") == 1_000
    assert _line(estimate, "worker requests") == 200


def test_continuation_pages_are_single_sends_and_more_deliveries() -> None:
    estimate = trawl_estimate(Workload(items=1_000, retry_rate=0.0, continuations_per_item=0.5))

    assert _line(estimate, "SendMessage for continuation") == 500
    assert _line(estimate, "ReceiveMessage") == 150  # 1,500 messages / 10


def test_worker_gb_seconds_are_batches_times_latency_times_memory() -> None:
    # 1M items / 10 = 100,000 invocations x 2.0 s x 0.5 GB = 100,000 GB-s = $1.33334 (arm64)
    w = Workload(items=1_000_000, avg_latency_ms=2_000, invocation_overhead_ms=0, retry_rate=0.0)
    estimate = trawl_estimate(w)

    assert _line(estimate, "worker duration") == pytest.approx(100_000)
    [duration] = [line for line in estimate.lines if line.what.startswith("worker duration")]
    assert duration.cost == pytest.approx(1.33334)
    assert _line(estimate, "worker requests") == 100_000  # $0.02


def test_s3_puts_are_one_per_record_plus_three_per_job() -> None:
    estimate = trawl_estimate(Workload(items=1_000_000, retry_rate=0.0, jobs=2))

    assert _line(estimate, "one object per record") == 1_000_000  # $5.00
    assert _line(estimate, "manifest") == 6
    assert sum(line.cost for line in estimate.lines if line.what == "one object per record") == pytest.approx(
        5.0
    )


def test_trawl_per_million_items_at_the_defaults() -> None:
    # SQS 0.1M + 2 x 0.105263M + 0.052632M requests = $0.1453; worker 105,264 x 2.1 s x 0.5 GB;
    # S3 1M PUT ($5) + 1M GET ($0.40); the ledger $0.80 (below): about $7.85 per million
    estimate = trawl_estimate(Workload(items=1_000_000))

    assert estimate.per_million_items == pytest.approx(7.85, abs=0.01)
    assert estimate.by_service()["S3"] == pytest.approx(5.40, abs=0.001)


def test_the_ledger_is_a_write_and_half_a_read_per_delivery() -> None:
    # 1,052,632 deliveries (5% retries): 1,052,632 write units ($0.658) and 526,316 read units
    # ($0.066); 1,053 batches of changes; 1M rows x 300 B stored a month = 0.3 GB ($0.075)
    estimate = trawl_estimate(Workload(items=1_000_000))
    ledger = [line for line in estimate.lines if line.what.startswith("ledger")]

    assert _line(estimate, "ledger: one conditional Put") == pytest.approx(1_052_631.6, abs=1)
    assert _line(estimate, "ledger: read the batch's item rows") == pytest.approx(526_315.8, abs=1)
    assert _line(estimate, "ledger: a delta row per batch") == 1_053
    assert _line(estimate, "ledger: item rows stored") == pytest.approx(0.3)
    assert sum(line.cost for line in ledger) == pytest.approx(0.80, abs=0.01)
    assert sum(line.cost for line in ledger) <= 1.50  # the ledger's budget per million items


def test_trawl_stays_under_0_8_of_distributed_maps_cheapest_line() -> None:
    trawl, *distributed_map = compare(Workload(items=1_000_000), PRICES)

    assert trawl.total <= 0.8 * min(e.total for e in distributed_map)


def test_distributed_map_standard_charges_two_transitions_per_item() -> None:
    # one transition per child started + the Task state; 3 for the parent
    estimate = step_functions_estimate(
        Workload(items=1_000_000, retry_rate=0.0, avg_latency_ms=2_000, invocation_overhead_ms=0)
    )

    assert estimate.by_service()["Step Functions"] == pytest.approx((3 + 2_000_000) * 0.025 / 1000)
    assert _line(estimate, "worker requests") == 1_000_000
    assert _line(estimate, "worker duration") == pytest.approx(1_000_000)  # 1M x 2 s x 0.5 GB


def test_distributed_map_express_children_bill_requests_and_64_mb_duration() -> None:
    w = Workload(items=1_000_000, retry_rate=0.0, avg_latency_ms=2_000, invocation_overhead_ms=0)
    estimate = step_functions_estimate(w, express=True)

    # 1M executions = $1.00; 1M x 2.0 s x 64/1024 GB = 125,000 GB-s = $2.08375
    assert _line(estimate, "Express child executions") == 1_000_000
    assert _line(estimate, "Express child duration") == pytest.approx(125_000)
    assert estimate.by_service()["Step Functions"] == pytest.approx(1_000_003 * 0.025 / 1000 + 1.0 + 2.08375)


def test_a_batched_child_retries_its_whole_batch() -> None:
    # 2 items a child, each failing half the time: a Task attempt succeeds 1/4 of the time
    estimate = step_functions_estimate(Workload(items=1_000, retry_rate=0.5, sfn_items_per_child=2))

    assert _line(estimate, "worker requests") == 500 * 4


def test_compare_puts_trawl_first_and_it_is_the_cheapest_at_the_defaults() -> None:
    estimates = compare(Workload(items=1_000_000), PRICES)

    assert estimates[0].name.startswith("trawl")
    assert len(estimates) == 5
    assert min(estimates, key=lambda e: e.total) is estimates[0]


@pytest.mark.parametrize(
    "bad", [{"retry_rate": 1.0}, {"retry_rate": -0.1}, {"batch_size": 0}, {"producer_items_per_second": 0}]
)
def test_impossible_workloads_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Workload(items=10, **bad)  # type: ignore[arg-type]


def test_cli_prints_the_price_inputs_and_a_json_summary() -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["cost", "--items", "1000000"])
    as_json = runner.invoke(app, ["cost", "--items", "1000000", "--avg-latency-ms", "2000", "--json"])

    assert text.exit_code == 0, text.output
    assert "us-east-1 list prices as assumed on 2025-06-01" in text.stdout and "not live" in text.stdout
    assert "lambda_arm64_per_gb_second" in text.stdout
    got = json.loads(as_json.stdout)
    assert got["prices"]["sqs_per_million_requests"] == 0.40
    assert got["estimates"][0]["per_million_items_usd"] == pytest.approx(7.85, abs=0.01)
    assert {e["name"] for e in got["estimates"]} >= {"trawl: SQS fan-out + Lambda + ledger"}
    assert got["prices"]["dynamodb_per_million_write_units"] == 0.625


def test_the_rate_budget_is_a_read_and_a_write_per_take() -> None:
    # 10,000 items, no retries: 10,000 calls; 2 calls a take -> 5,000 takes
    estimate = trawl_estimate(Workload(items=10_000, retry_rate=0.0, calls_per_take=2), PRICES)

    takes = _line(estimate, "rate budget: GetItem")
    assert takes == 5_000
    assert _line(estimate, "rate budget: conditional PutItem") == 5_000
    budget = [line for line in estimate.lines if line.what.startswith("rate budget")]
    assert sum(line.cost for line in budget) == pytest.approx(5_000 * (0.125 + 0.625) / 1e6)
    assert not [
        line for line in trawl_estimate(Workload(items=10_000), PRICES).lines if "rate budget" in line.what
    ]


def test_a_batch_of_100_fetched_at_once_needs_a_tenth_of_the_gb_seconds_per_item() -> None:
    ten = worker_gb_seconds_per_item(Workload(items=1, batch_size=10, fetch_concurrency=10))
    hundred = worker_gb_seconds_per_item(Workload(items=1, batch_size=100, fetch_concurrency=100))
    hundred_ten_at_a_time = worker_gb_seconds_per_item(Workload(items=1, batch_size=100))

    assert ten == pytest.approx((2.0 + 0.1) * 0.5 / 10)
    assert hundred == pytest.approx(ten / 10)
    assert hundred_ten_at_a_time == pytest.approx((10 * 2.0 + 0.1) * 0.5 / 100)


def test_trawl_cost_prints_gb_seconds_at_batch_10_and_100() -> None:
    result = CliRunner().invoke(app, ["cost", "--items", "1000", "--json"])

    assert result.exit_code == 0, result.output
    per_item = json.loads(result.output)["worker_gb_seconds_per_item"]
    assert per_item["batch_100"] == pytest.approx(per_item["batch_10"] / 10)
