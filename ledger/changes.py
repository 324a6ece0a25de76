"""What a batch of the ledger table's change records (DynamoDB Streams) means for the job
counts: for each item row change, the item leaves its old outcome and enters its new one,
adds the records it wrote, and, when the change is a failed delivery, counts its reason. Per
minute, it counts the items that ended and the throttled calls; when the item becomes ok, its
records' data fields with a value (the job's field coverage). Pure: records in, deltas out.

Each item row change is in the stream exactly once, and in order per item, so summing these
deltas exactly once per record gives exact counts (ledger/counts.py applies them once). Every
delta comes from the two images alone, never from the clock: the minute is the one the worker
wrote the row in (its info.updated_at), so a batch read again gives the same deltas."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamRecordModel

from models.ledger import ENDED, OUTCOMES, REASONS, item_of, minute_counter, minute_of


@dataclass(frozen=True)
class Change:
    sequence: str  # the stream record's sequence number
    job_id: str
    # counter name (n_<outcome>, r_<reason>, records, deliveries, m<minute>_<what>, f_<field>) -> amount
    delta: Counter[str]


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


def _minute(image: Mapping[str, Any]) -> str | None:
    """The minute the row was written in; None for a row without a readable time."""
    stamp = _image(image.get("info")).get("updated_at")
    try:
        return minute_of(str(stamp)) if stamp is not None else None
    except ValueError:
        return None


def _per_minute(old: Mapping[str, Any], new: Mapping[str, Any]) -> Counter[str]:
    """An item that reaches an end outcome counts at the minute of its new row (and, if ok, as
    ok there); one that leaves an end outcome (a re-driven item) is taken back from the minute
    of its old row, so the minutes always sum to the job's ended items. A delivery's throttled
    calls count at the minute its row was written."""
    delta: Counter[str] = Counter()
    was, now = old.get("outcome"), new.get("outcome")
    if was != now:
        for image, outcome, sign in ((old, was, -1), (new, now, 1)):
            minute = _minute(image)
            if outcome in ENDED and minute is not None:
                delta[minute_counter(minute, "ended")] += sign
                if outcome == "ok":
                    delta[minute_counter(minute, "ok")] += sign
    throttled = _number(new, "throttled_calls") - _number(old, "throttled_calls")
    minute = _minute(new)
    if throttled and minute is not None:
        delta[minute_counter(minute, "throttled")] += throttled
    return delta


def _coverage(old: Mapping[str, Any], new: Mapping[str, Any]) -> Counter[str]:
    """When the item becomes ok: its records (the denominator) and, per data field, how many of
    them have a value (the worker sums both over the item's pages)."""
    if new.get("outcome") != "ok" or old.get("outcome") == "ok":
        return Counter()
    delta = Counter({f"f_{name}": int(count) for name, count in _image(new.get("field_counts")).items()})
    delta["ok_records"] += _number(new, "records")
    return delta


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
        delta.update(_per_minute(old, new))
        delta.update(_coverage(old, new))
        delta = Counter({name: amount for name, amount in delta.items() if amount})
        batch.jobs.add(job_id)
        if delta:
            batch.changes.append(Change(record.dynamodb.SequenceNumber, job_id, delta))
    return batch
