"""What a batch of the ledger table's change records (DynamoDB Streams) means for the job
counts: for each item row change, the item leaves its old outcome and enters its new one,
adds the records it wrote, and, when the change is a failed delivery, counts its reason.
Pure: records in, deltas out.

Each item row change is in the stream exactly once, and in order per item, so summing these
deltas exactly once per record gives exact counts (ledger/counts.py applies them once)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel

from models.ledger import OUTCOMES, REASONS, item_of


@dataclass(frozen=True)
class Change:
    sequence: str  # the stream record's sequence number
    job_id: str
    delta: Counter[str]  # counter name (n_<outcome>, r_<reason>, records, deliveries) -> amount


@dataclass
class Batch:
    """A batch's changes in stream order, and every job it touched (item or job rows)."""

    changes: list[Change] = field(default_factory=list)
    jobs: set[str] = field(default_factory=set)


def _image(found: Any) -> Mapping[str, Any]:
    return found if isinstance(found, Mapping) else {}


def _number(image: Mapping[str, Any], name: str) -> int:
    value = image.get(name)
    return int(value) if value is not None else 0


def read(records: Iterable[DynamoDBStreamRecordModel]) -> Batch:
    """The batch's changes; `records` parsed with Powertools' stream model (images deserialised)."""
    batch = Batch()
    for record in records:
        keys = record.dynamodb.Keys
        pk = str(keys.get("pk", ""))
        if pk.startswith("JOB#") and keys.get("sk") == "JOB":
            batch.jobs.add(pk[4:])  # the producer moved on: the job may have settled
            continue
        if not pk.startswith("ITEM#") or record.eventName == "REMOVE":
            continue  # counter rows, batch markers, and item rows expiring (TTL): no count changes
        old, new = _image(record.dynamodb.OldImage), _image(record.dynamodb.NewImage)
        job_id, _ = item_of(pk)
        delta: Counter[str] = Counter()
        was, now = old.get("outcome"), new.get("outcome")
        if was != now:
            if was in OUTCOMES:
                delta[f"n_{was}"] -= 1
            if now in OUTCOMES:
                delta[f"n_{now}"] += 1
        for number in ("records", "calls", "throttled_calls"):
            delta[number] += _number(new, number) - _number(old, number)
        if new.get("last_delivery") != old.get("last_delivery"):
            delta["deliveries"] += 1
            reason = (new.get("info") or {}).get("reason")
            if reason in REASONS:
                delta[f"r_{reason}"] += 1
        delta = Counter({name: amount for name, amount in delta.items() if amount})
        batch.jobs.add(job_id)
        if delta:
            batch.changes.append(Change(record.dynamodb.SequenceNumber, job_id, delta))
    return batch
