"""The worker's side of the job ledger: each item's row, read for the whole batch before any
fetch (a settled item is not fetched again), and its new state after each delivery, written
in one conditional PutItem. The counts are not written here: the ledger function sums them from
these rows' changes, so an outcome that does not change (a duplicate delivery, a write retried)
changes no count.

An item row holds: outcome, last_delivery (the delivery last written, so one is never written
twice, and the row's version for the conditional write), receives and records, info (when, and
why the last delivery failed), calls and throttled_calls (upstream calls made for it, and how
many were answered 429/503), field_counts (per data field, how many of its ok records have a
value: summed over a tiktok/videos account's pages like `records`), expires_at (its TTL),
page_from (tiktok/videos: the page its last counted message started at), and while
dead-lettered or stale the sparse index's keys. Its job and item key are in its partition key.

Why a Put conditioned on the version read, not an UpdateItem with the rules in its condition:
the same one-item atomic write, but the rules read as plain Python, and an UpdateItem of this
many clauses costs the embedded DynamoDB (moto) four times a Put."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from models.ledger import NEEDS_A_PERSON, OPEN, Delivery, expires_at, item_key, item_of, open_index_key

_serialise = TypeSerializer().serialize
_deserialise = TypeDeserializer().deserialize
WRITE_TRIES = 3  # a row changed between read and write (a duplicate delivery): read, decide again

Row = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What one delivery of an item came to."""

    outcome: str  # pending (to be retried), dead_lettered, ok, or a permanent status
    reason: str | None = None  # why it failed (the reason vocabulary), None when it did not
    detail: str | None = None
    records: int = 0  # records this delivery wrote
    page: int | None = None  # tiktok/videos: the page a delivery that wrote records started at
    calls: int = 0  # upstream calls this delivery made
    throttled: int = 0  # of them, answered 429/503
    # Of the ok records this delivery wrote, per data field, how many have a value.
    field_counts: Mapping[str, int] = field(default_factory=dict)


def next_row(
    old: Row | None, job_id: str, key: str, delivery: Delivery, what: Outcome, now: dt.datetime, ttl_days: int
) -> Row | None:
    """The item's row after this delivery, or None when the delivery changes nothing: the item
    is settled already, this very delivery was written before, or (tiktok/videos) its page's
    records were counted before."""
    old = old or {}
    if old.get("outcome") not in (None, *OPEN) or old.get("last_delivery") == delivery.token:
        return None
    if what.page is not None and "page_from" in old and int(old["page_from"]) >= what.page:
        return None
    info: Row = {"updated_at": now.isoformat()}
    if what.reason is not None:
        info |= {"reason": what.reason, "error": (what.detail or what.reason)[:500]}
    row: Row = {
        **item_key(job_id, key),
        "outcome": what.outcome,
        "last_delivery": delivery.token,
        "receives": int(old.get("receives", 0)) + 1,
        "records": int(old.get("records", 0)) + what.records,
        "calls": int(old.get("calls", 0)) + what.calls,
        "throttled_calls": int(old.get("throttled_calls", 0)) + what.throttled,
        "info": info,
        "expires_at": expires_at(now, ttl_days),
    }
    field_counts = Counter({name: int(n) for name, n in (old.get("field_counts") or {}).items()})
    field_counts.update(what.field_counts)
    if field_counts:
        row["field_counts"] = dict(field_counts)
    page = what.page if what.page is not None else old.get("page_from")
    if page is not None:
        row["page_from"] = int(page)
    if what.outcome in NEEDS_A_PERSON:
        row |= {"open_pk": open_index_key(job_id, what.outcome), "open_sk": key}
    return row


class Ledger:
    def __init__(self, dynamodb: Any, table: str, ttl_days: int) -> None:
        self._db = dynamodb
        self._table = table
        self._ttl_days = ttl_days

    def rows(self, job_id_keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        """The rows the ledger has for these (job_id, item_key) pairs."""
        found: dict[tuple[str, str], Row] = {}
        wanted = list(dict.fromkeys(job_id_keys))
        for start in range(0, len(wanted), 100):
            keys = [_wire(item_key(job, key)) for job, key in wanted[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys}}
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    row = {name: _deserialise(value) for name, value in item.items()}
                    found[item_of(str(row["pk"]))] = row
                request = response.get("UnprocessedKeys") or {}
        return found

    def record(self, job_id: str, key: str, delivery: Delivery, what: Outcome, old: Row | None) -> bool:
        """Write this delivery's outcome over the row read before (`old`); False when it
        changes nothing. If the row changed meanwhile, it is read again and decided again."""
        for _ in range(WRITE_TRIES):
            row = next_row(old, job_id, key, delivery, what, dt.datetime.now(dt.UTC), self._ttl_days)
            if row is None:
                return False
            if old is None:
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                condition = {
                    "ConditionExpression": "last_delivery = :version",
                    "ExpressionAttributeValues": {":version": {"S": str(old["last_delivery"])}},
                }
            try:
                self._db.put_item(TableName=self._table, Item=_wire(row), **condition)
            except self._db.exceptions.ConditionalCheckFailedException:
                found = self._db.get_item(
                    TableName=self._table, Key=_wire(item_key(job_id, key)), ConsistentRead=True
                )
                old = {name: _deserialise(value) for name, value in found.get("Item", {}).items()} or None
                continue
            return True
        raise RuntimeError(
            f"item {key} of job {job_id}: its ledger row kept changing under {WRITE_TRIES} writes"
        )


def _wire(row: Row) -> dict[str, Any]:
    return {name: _serialise(value) for name, value in row.items()}
