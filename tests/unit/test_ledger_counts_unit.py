"""The ledger's counts as read: summed over counter rows, with a stable order of reasons; and
what each item row change adds to them (ledger/changes.py), from rows the worker's own
next_row makes: per-minute counts and field coverage. No sockets."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel
from boto3.dynamodb.types import TypeSerializer

from ledger import changes
from models import AccountData, VideoData
from models.ledger import Counts, Delivery, item_key, job_state
from trawl.local.events import dynamodb_stream_event
from workers.ledger import Outcome, next_row
from workers.output import field_counts


def test_counts_sum_counter_rows_and_skip_what_is_not_a_count() -> None:
    rows = [
        {"pk": "JOB#j", "sk": "JOB", "enqueued": Decimal(3), "producer": "enqueued"},
        {"pk": "JOB#j", "sk": "DELTA#1", "last": Decimal(7), "n_ok": Decimal(2), "r_throttled": Decimal(4)},
        {"pk": "JOB#j", "sk": "FOLD#0", "n_not_found": Decimal(1), "records": Decimal(3), "flag": True},
    ]

    counts = Counts.of(rows[1:])

    assert (counts.ok, counts.permanent, counts.records) == (2, 1, 3)
    assert counts.top_reasons() == [("throttled", 4)]
    assert job_state("enqueued", 3, counts) == "done"
    assert job_state("enqueued", 4, counts) == "running"


def test_reasons_most_first_and_ties_by_name() -> None:
    counts = Counts.of([{"r_private": 1, "r_not_found": 1, "r_timeout": 2, "r_unseen": 0}])

    assert counts.top_reasons() == [("timeout", 2), ("not_found", 1), ("private", 1)]
    assert counts.top_reasons(1) == [("timeout", 2)]


def test_minute_and_field_counters_sum_over_delta_and_fold_rows() -> None:
    rows = [
        {"sk": "FOLD#a", "m202612020501_ended": Decimal(2), "f_name": Decimal(1), "ok_records": Decimal(2)},
        {"sk": "DELTA#b", "m202612020501_ended": Decimal(1), "m202612020502_ended": Decimal(-1)},
        {"sk": "DELTA#c", "m202612020502_ended": Decimal(1), "m202612020502_throttled": Decimal(0)},
    ]

    counts = Counts.of(rows)

    # 05:02 nets to nothing (an item re-driven after ending there, say): it is left out.
    assert counts.timeline() == [("202612020501", Counter(ended=3))]
    assert counts.coverage(["name", "price"]) == {"name": 0.5, "price": 0.0}
    assert Counts().coverage(["name"]) == {}


class Stream:
    """Item rows as the worker writes them (next_row), and the change records their writes put
    on the table's stream, read as the ledger function reads them."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []

    def write(self, key: str, token: str, what: Outcome, at: dt.datetime) -> None:
        old = self.rows.get(key)
        new = next_row(old, JOB, key, Delivery(token, 1), what, at, ttl_days=30)
        if new is None:
            return  # the worker writes nothing: no change record
        change: dict[str, Any] = {
            "Keys": _wire(item_key(JOB, key)),
            "NewImage": _wire(new),
            "SequenceNumber": str(1000 + len(self.records)),
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old is not None:
            change["OldImage"] = _wire(old)
        name = "MODIFY" if old is not None else "INSERT"
        self.records.append({"eventID": str(len(self.records)), "eventName": name, "dynamodb": change})
        self.rows[key] = new

    def read(self) -> changes.Batch:
        event = dynamodb_stream_event(self.records, STREAM_ARN, "us-east-1")
        return changes.read(DynamoDBStreamModel.model_validate(event).Records)

    def counts(self) -> Counts:
        return Counts.of(change.delta for change in self.read().changes)


JOB = "00000000000000c1"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger/stream/2026-12-01T00:00:00.000"
_serialise = TypeSerializer().serialize


def _wire(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _serialise(value) for name, value in row.items()}


def _at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 2, 5, minute, second, tzinfo=dt.UTC)


def test_an_item_counts_in_the_minute_its_row_was_written_and_a_batch_read_again_alike() -> None:
    stream = Stream()
    stream.write("a", "m1:1", Outcome("pending", reason="throttled", calls=3, throttled=2), _at(1, 30))
    stream.write("a", "m1:2", Outcome("ok", records=1, calls=2, throttled=1), _at(2, 10))
    stream.write("b", "m2:1", Outcome("not_found", reason="not_found", records=1, calls=1), _at(2, 59))

    batch = stream.read()

    # The retried delivery ends nothing: it counts its throttled calls, and no `ended`.
    assert batch.changes[0].delta["m202612020501_throttled"] == 2
    assert not [name for name in batch.changes[0].delta if name.endswith(("_ended", "_ok"))]
    counts = stream.counts()
    assert counts.timeline() == [
        ("202612020501", Counter(throttled=2)),
        ("202612020502", Counter(ended=2, ok=1, throttled=1)),
    ]
    assert sum(c["ended"] for _, c in counts.timeline()) == counts.ended == 2
    # Read again (Lambda retrying the batch, hours later): the same counters, to the minute,
    # so the delta row already written for it is the whole of it.
    assert stream.read() == batch


def test_a_redriven_item_is_taken_back_from_the_minute_it_had_ended_in() -> None:
    stream = Stream()
    stream.write("a", "m1:5", Outcome("dead_lettered", reason="upstream_5xx"), _at(1))
    stream.write("b", "m2:5", Outcome("dead_lettered", reason="timeout"), _at(1))
    stream.write("a", "m3:1", Outcome("pending", reason="timeout"), _at(30))  # re-driven, fails once
    stream.write("a", "m3:2", Outcome("ok", records=1), _at(31))
    stream.write("b", "m4:1", Outcome("ok", records=1), _at(32))  # re-driven, ok at once

    counts = stream.counts()

    assert counts.timeline() == [
        ("202612020531", Counter(ended=1, ok=1)),
        ("202612020532", Counter(ended=1, ok=1)),
    ]
    assert counts.ended == counts.ok == 2


def _account(nickname: str | None, followers: int | None) -> AccountData:
    return AccountData(
        id="1",
        unique_id="u",
        sec_uid=None,
        nickname=nickname,
        verified=False,
        private=False,
        followers=followers,
        following=None,
        likes=0,
        videos=None,
    )


def test_coverage_is_each_fields_share_of_the_ok_records_with_a_value() -> None:
    stream = Stream()
    found = [_account("Ann", 10), _account("", None), _account(None, None)]
    for n, data in enumerate(found):
        what = Outcome("ok", records=1, field_counts=field_counts([data]))
        stream.write(f"u{n}", f"m{n}:1", what, _at(5))
    # A private account writes its data too, but is not ok: not in the coverage.
    stream.write("p", "m9:1", Outcome("private", reason="private", records=1), _at(5))
    stream.write("q", "m8:1", Outcome("pending", reason="timeout"), _at(5))

    coverage = stream.counts().coverage(AccountData.model_fields)

    assert list(coverage) == list(AccountData.model_fields)
    assert coverage == {
        "id": 1.0,
        "unique_id": 1.0,
        "sec_uid": 0.0,  # null in every record: still listed
        "nickname": 2 / 3,  # "" is a value
        "verified": 1.0,  # False is a value
        "private": 1.0,
        "followers": 1 / 3,
        "following": 0.0,
        "likes": 1.0,  # 0 is a value
        "videos": 0.0,
    }


def _video(n: int, description: str | None) -> VideoData:
    none: dict[str, Any] = dict.fromkeys(("created_at", "plays", "likes", "comments", "shares"))
    return VideoData(id=str(n), author="a", description=description, **none)


def test_a_videos_accounts_records_count_once_each_when_it_settles() -> None:
    stream = Stream()
    first = [_video(1, "hi"), _video(2, None)]
    page_0 = Outcome("pending", records=2, page=0, field_counts=field_counts(first))
    stream.write("acct", "m1:1", page_0, _at(1))
    stream.write("acct", "m1:2", page_0, _at(2))  # page 0's message again: not counted again
    assert stream.counts().coverage(VideoData.model_fields) == {}  # not ok yet

    last = Outcome("ok", records=1, page=3, field_counts=field_counts([_video(3, "yo")]))
    stream.write("acct", "m2:1", last, _at(3))

    counts = stream.counts()
    assert (counts.ok_records, counts.records) == (3, 3)
    coverage = counts.coverage(VideoData.model_fields)
    assert (coverage["id"], coverage["description"], coverage["plays"]) == (1.0, 2 / 3, 0.0)
