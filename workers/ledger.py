"""The worker's side of the job ledger: which items of a batch are settled already (so none is
fetched again), and each item's outcome, one conditional UpdateItem per delivery. The counts
are not written here: the ledger function sums them from these rows' changes, so an outcome
that does not change (a duplicate delivery, a write retried) changes no count."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from models.ledger import OPEN, SETTLED, Delivery, expires_at, item_key, open_index_key

_OPEN_VALUES = {f":open{i}": {"S": outcome} for i, outcome in enumerate(OPEN)}
_STILL_OPEN = f"(attribute_not_exists(outcome) OR outcome IN ({', '.join(_OPEN_VALUES)}))"
_NEW_DELIVERY = "(attribute_not_exists(last_delivery) OR last_delivery <> :delivery)"


@dataclass(frozen=True)
class Outcome:
    """What one delivery of an item came to."""

    outcome: str  # pending (to be retried), dead_lettered, ok, or a permanent status
    reason: str | None = None  # why it failed (the reason vocabulary), None when it did not
    detail: str | None = None
    records: int = 0  # records this delivery wrote
    page: int | None = None  # tiktok/videos: the page a delivery that wrote records started at


class Ledger:
    def __init__(self, dynamodb: Any, table: str, ttl_days: int) -> None:
        self._db = dynamodb
        self._table = table
        self._ttl_days = ttl_days

    def settled(self, job_id_keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (job_id, item_key) pairs whose outcome is settled already."""
        found: set[tuple[str, str]] = set()
        wanted = list(dict.fromkeys(job_id_keys))
        for start in range(0, len(wanted), 100):
            keys: list[dict[str, Any]] = [
                {k: {"S": v} for k, v in item_key(job, key).items()}
                for job, key in wanted[start : start + 100]
            ]
            request = {self._table: {"Keys": keys, "ProjectionExpression": "job_id, item_key, outcome"}}
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for row in response.get("Responses", {}).get(self._table, []):
                    if row.get("outcome", {}).get("S") in SETTLED:
                        found.add((row["job_id"]["S"], row["item_key"]["S"]))
                request = response.get("UnprocessedKeys") or {}
        return found

    def record(self, job_id: str, key: str, platform: str, delivery: Delivery, what: Outcome) -> bool:
        """Write this delivery's outcome; False when the item was settled already (or this very
        delivery was written before), so nothing changed."""
        now = dt.datetime.now(dt.UTC)
        names = {"#records": "records"}
        values: dict[str, Any] = {
            ":delivery": {"S": delivery.token},
            ":outcome": {"S": what.outcome},
            ":job": {"S": job_id},
            ":key": {"S": key},
            ":platform": {"S": platform},
            ":now": {"S": now.isoformat()},
            ":ttl": {"N": str(expires_at(now, self._ttl_days))},
            ":one": {"N": "1"},
            ":records": {"N": str(what.records)},
            **_OPEN_VALUES,
        }
        sets = [
            "outcome = :outcome",
            "job_id = :job",
            "item_key = :key",
            "platform = :platform",
            "last_delivery = :delivery",
            "updated_at = :now",
            "expires_at = :ttl",
        ]
        adds = ["receives :one", "#records :records"]
        removes = []
        condition = f"{_STILL_OPEN} AND {_NEW_DELIVERY}"
        if what.reason is not None:
            sets += ["last_reason = :reason", "last_error = :error"]
            values[":reason"] = {"S": what.reason}
            values[":error"] = {"S": (what.detail or what.reason)[:500]}
        else:  # a delivery that succeeded: no failure of it to count
            removes += ["last_reason", "last_error"]
        if what.outcome in ("dead_lettered", "stale"):
            sets += ["open_pk = :open_pk", "open_sk = :key"]
            values[":open_pk"] = {"S": open_index_key(job_id, what.outcome)}
        else:
            removes += ["open_pk", "open_sk"]
        if what.page is not None:
            # tiktok/videos: an account's records come a few pages per message; each message's
            # are added once, however often it is delivered.
            sets.append("page_from = :page")
            condition += " AND (attribute_not_exists(page_from) OR page_from < :page)"
            values[":page"] = {"N": str(what.page)}
        expression = f"SET {', '.join(sets)} ADD {', '.join(adds)}"
        if removes:
            expression += f" REMOVE {', '.join(removes)}"
        try:
            self._db.update_item(
                TableName=self._table,
                Key={k: {"S": v} for k, v in item_key(job_id, key).items()},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True
