"""Reading the ledger: one job (its row and its counter rows: one Query, whatever the job's
size), the recent jobs, and a job's items that need a person. Used by the ledger function and
by the CLI alike, so both see the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from models.ledger import Counts, JobState, counted_rows, item_of, job_state, open_index_key

_deserialise = TypeDeserializer().deserialize


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserialise(value) for name, value in item.items()}


@dataclass(frozen=True)
class JobView:
    job: dict[str, Any]  # the job's row, as its producer last wrote it
    counts: Counts
    rows: list[dict[str, Any]]  # its delta and fold rows, in key order

    @property
    def producer(self) -> str:
        return str(self.job.get("producer", "running"))

    @property
    def enqueued(self) -> int:
        return int(self.job.get("enqueued", 0))

    def state(self, producer: str | None = None) -> JobState:
        """With `producer`, the producer's status as the manifest tells it (the manifest knows
        a producer that died); else as the job row does."""
        return job_state(producer or self.producer, self.enqueued, self.counts)

    @property
    def in_flight(self) -> int:
        return max(0, self.enqueued - self.counts.ended)


def read_job(dynamodb: Any, table: str, job_id: str) -> JobView | None:
    rows: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": f"JOB#{job_id}"}},
        "ConsistentRead": True,
    }
    while True:
        response = dynamodb.query(**request)
        rows += [_plain(item) for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    job = next((row for row in rows if row.get("sk") == "JOB"), None)
    if job is None:
        return None
    kept = [row for row in rows if str(row.get("sk", "")).startswith(("FOLD#", "DELTA#"))]
    return JobView(job, Counts.of(counted_rows(kept)), kept)


def recent_jobs(dynamodb: Any, table: str, limit: int = 20) -> list[dict[str, Any]]:
    """Job rows, newest first."""
    response = dynamodb.query(
        TableName=table,
        IndexName="recent",
        KeyConditionExpression="recent_pk = :jobs",
        ExpressionAttributeValues={":jobs": {"S": "JOBS"}},
        ScanIndexForward=False,
        Limit=limit,
    )
    return [_plain(item) for item in response.get("Items", [])]


def open_items(
    dynamodb: Any, table: str, job_id: str, outcome: str, limit: int = 100
) -> list[dict[str, Any]]:
    """A job's dead_lettered (or stale) items, from the sparse index: item_key, outcome, the
    last reason and error, receives."""
    response = dynamodb.query(
        TableName=table,
        IndexName="open",
        KeyConditionExpression="open_pk = :open",
        ExpressionAttributeValues={":open": {"S": open_index_key(job_id, outcome)}},
        Limit=limit,
    )
    found = []
    for item in map(_plain, response.get("Items", [])):
        info = item.get("info") or {}
        found.append(
            {
                "item_key": item_of(str(item["pk"]))[1],
                "outcome": outcome,
                "reason": info.get("reason"),
                "error": info.get("error"),
                "receives": int(item.get("receives", 0)),
            }
        )
    return found
