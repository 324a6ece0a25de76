"""The ledger's counts are exact: every item row change is counted once, whatever is delivered
twice, retried, re-driven or folded. The embedded AWS, the table as template.yaml defines it
(a fresh one per test), the workers' own writes, and the stream records those writes make."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from ledger import changes
from ledger.counts import FOLD_AT, CountWriter
from ledger.view import read_job
from models.ledger import Delivery, job_key
from trawl.local.aws import EmbeddedAws
from trawl.local.events import dynamodb_stream_event
from trawl.local.template import load_template
from workers.ledger import Ledger, Outcome

JOB = "00000000000000c1"


class Table:
    """The ledger table, its stream, and the two writers under test."""

    def __init__(self, aws: EmbeddedAws, name: str) -> None:
        props = load_template()["Resources"]["JobLedger"]["Properties"]
        self.db = aws.endpoint.client("dynamodb")
        self.name = name
        self.db.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
            StreamSpecification={"StreamEnabled": True, **props["StreamSpecification"]},
        )
        job = {**_wire(job_key(JOB)), "job_id": {"S": JOB}, "enqueued": {"N": "3"}}
        self.db.put_item(TableName=name, Item=job)
        self.streams = aws.endpoint.client("dynamodbstreams")
        self.stream_arn = arn = self.db.describe_table(TableName=name)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self._iterator = self.streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        self.items = Ledger(self.db, name, ttl_days=30)
        self.counts = CountWriter(self.db, name)

    def record(self, key: str, token: str, outcome: str, **what: Any) -> bool:
        rows = self.items.rows([(JOB, key)])
        return self.items.record(JOB, key, Delivery(token, 1), Outcome(outcome, **what), rows.get((JOB, key)))

    def new_records(self) -> list[dict[str, Any]]:
        response = self.streams.get_records(ShardIterator=self._iterator)
        self._iterator = response["NextShardIterator"]
        return list(response["Records"])

    def apply(self, records: list[dict[str, Any]]) -> int:
        """Hand the records to the count writer as Lambda's event carries them."""
        event = dynamodb_stream_event(records, self.stream_arn, "us-east-1")
        return self.counts.apply(changes.read(DynamoDBStreamModel.model_validate(event).Records))

    def outcomes(self) -> dict[str, int]:
        view = read_job(self.db, self.name, JOB)
        assert view is not None
        return {k: v for k, v in view.counts.outcomes.items() if v}

    def per_minute(self) -> Counter[str]:
        """The job's minute counters, summed over its minutes."""
        view = read_job(self.db, self.name, JOB)
        assert view is not None
        total: Counter[str] = Counter()
        for _, counts in view.counts.timeline():
            total.update(counts)
        return total


def _wire(key: dict[str, str]) -> dict[str, Any]:
    return {k: {"S": v} for k, v in key.items()}


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    embedded = EmbeddedAws().start()
    yield embedded
    embedded.stop()


@pytest.fixture
def table(aws: EmbeddedAws, request: pytest.FixtureRequest) -> Table:
    return Table(aws, request.node.name.replace("[", "-").replace("]", "")[:200])


def test_each_change_counts_once_however_often_its_batch_is_handed_over(table: Table) -> None:
    table.record("a", "m1:1", "pending", reason="throttled")
    table.record("a", "m1:2", "ok", records=1)
    table.record("b", "m2:1", "not_found", reason="not_found", records=1)
    batch = table.new_records()[1:]  # the job row's own insert aside

    assert table.apply(batch) == 3
    assert table.apply(batch) == 0  # Lambda's retry of the same batch
    table.record("c", "m3:1", "ok", records=1)
    longer = batch + table.new_records()
    assert table.apply(longer) == 1  # a retry that reads further counts only what is new

    view = read_job(table.db, table.name, JOB)
    assert view is not None
    assert table.outcomes() == {"ok": 2, "not_found": 1}
    assert (view.counts.records, view.counts.deliveries) == (3, 4)
    assert dict(view.counts.reasons) == {"throttled": 1, "not_found": 1}


def test_minutes_and_coverage_count_once_however_often_their_batch_is_handed_over(table: Table) -> None:
    table.record("a", "m1:1", "pending", reason="throttled", calls=3, throttled=2)
    table.record("a", "m1:2", "ok", records=1, calls=1, field_counts={"name": 1, "price": 1})
    table.record("b", "m2:1", "ok", records=1, calls=1, field_counts={"name": 1})
    table.record("c", "m3:1", "not_found", reason="not_found", records=1, calls=1)
    batch = table.new_records()[1:]

    table.apply(batch)
    table.apply(batch)  # Lambda's retry of the same batch
    table.apply(batch[:2])  # ...and of a shorter one

    assert table.per_minute() == Counter(ended=3, ok=2, throttled=2)
    view = read_job(table.db, table.name, JOB)
    assert view is not None
    assert view.counts.coverage(["name", "price", "brand"]) == {"name": 1.0, "price": 0.5, "brand": 0.0}


def test_duplicate_deliveries_and_settled_items_change_no_count(table: Table) -> None:
    assert table.record("a", "m1:1", "ok", records=1)
    assert not table.record("a", "m1:1", "ok", records=1)  # the same delivery, written again
    assert not table.record("a", "m9:1", "ok", records=1)  # a duplicate message of a settled item
    table.apply(table.new_records())
    assert table.outcomes() == {"ok": 1}


def test_a_redriven_item_moves_from_dead_lettered_to_ok(table: Table) -> None:
    table.record("a", "m1:1", "pending", reason="upstream_5xx")
    table.record("a", "m1:2", "dead_lettered", reason="upstream_5xx")
    table.apply(table.new_records())
    assert table.outcomes() == {"dead_lettered": 1}

    table.record("a", "m2:1", "ok", records=1)  # re-driven: a new message, and it succeeds
    table.apply(table.new_records())
    assert table.outcomes() == {"ok": 1}


def test_a_videos_accounts_pages_are_counted_once_each(table: Table) -> None:
    table.record("acct", "m1:1", "pending", records=90, page=0)
    assert not table.record("acct", "m1:2", "pending", records=90, page=0)  # page 0's message again
    table.record("acct", "m2:1", "ok", records=10, page=3)
    table.apply(table.new_records())
    view = read_job(table.db, table.name, JOB)
    assert view is not None and (view.counts.ok, view.counts.records) == (1, 100)


def test_folding_keeps_the_counts_and_a_fold_cut_short_counts_nothing_twice(table: Table) -> None:
    for n in range(FOLD_AT + 6):  # one batch (so one delta row) per item
        table.record(f"i{n}", f"m{n}:1", "ok", records=1)
        table.apply(table.new_records())
    before = table.outcomes()
    view = read_job(table.db, table.name, JOB)
    assert view is not None and len(view.rows) >= FOLD_AT

    deleted: list[Any] = []
    real_delete = table.db.delete_item
    table.db.delete_item = lambda **kw: deleted.append(kw)  # dies before its deletes
    assert table.counts.fold(JOB, view.rows)
    assert table.outcomes() == before == {"ok": FOLD_AT + 6}
    assert table.per_minute() == Counter(ended=FOLD_AT + 6, ok=FOLD_AT + 6)
    table.db.delete_item = real_delete

    again = read_job(table.db, table.name, JOB)
    assert again is not None
    table.counts.fold(JOB, again.rows)  # nothing left to fold: the covered deltas do not count
    assert table.outcomes() == before
    assert table.per_minute() == Counter(ended=FOLD_AT + 6, ok=FOLD_AT + 6)
