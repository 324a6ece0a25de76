"""Watch lists: CSVs under watch/<platform>/<kind>/<name>.csv that trawl fetches on a schedule.

One EventBridge Scheduler schedule serves every list. Its firing reaches the producer as a
`trawl_watch` event carrying the scheduled time; the producer turns it into one `trawl_run`
invocation of itself per list, each a normal job dated by the scheduled time in the schedule's
timezone. The job's identity is (list, date): a duplicated delivery, a retry, a flexible window
that runs past midnight or an edit of the list that same day finds the job there already. A list
is paused while a `<name>.paused` marker sits beside it."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeDeserializer

from models import ObjectRef
from models.ledger import Counts, counted_rows, job_state, watch_index_key

logger = Logger(service="trawl", child=True)

WATCH_PREFIX = "watch/"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_KEY = re.compile(r"^watch/([^/]+)/([^/]+)/([^/]+)\.(csv|paused)$")
_deserialise = TypeDeserializer().deserialize


@dataclass(frozen=True)
class WatchList:
    name: str
    platform: str
    kind: str
    key: str
    etag: str
    paused: bool

    def ref(self, bucket: str) -> ObjectRef:
        """The list's object as it stands (its firing's job reads these bytes)."""
        return ObjectRef(bucket=bucket, key=self.key, etag=self.etag)


def watch_key(platform: str, kind: str, name: str, suffix: str = "csv") -> str:
    return f"{WATCH_PREFIX}{platform}/{kind}/{name}.{suffix}"


def list_watch_lists(s3: Any, bucket: str) -> list[WatchList]:
    """Every list under watch/, by name; one ListObjectsV2 page per 1,000 keys."""
    lists: list[tuple[str, str, str, str, str]] = []
    paused: set[tuple[str, str, str]] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=WATCH_PREFIX):
        for obj in page.get("Contents", []):
            found = _KEY.match(obj["Key"])
            if found is None:
                logger.warning("not a watch list (watch/<platform>/<kind>/<name>.csv)", key=obj["Key"])
                continue
            platform, kind, name, suffix = found.groups()
            if suffix == "paused":
                paused.add((platform, kind, name))
            else:
                lists.append((name, platform, kind, obj["Key"], obj["ETag"].strip('"')))
    return sorted(
        (WatchList(n, p, k, key, etag, (p, k, n) in paused) for n, p, k, key, etag in lists),
        key=lambda w: (w.name, w.key),
    )


def fire_date(scheduled_time: dt.datetime, timezone: str) -> dt.date:
    """The firing's date: its scheduled time in the schedule's timezone, never the clock."""
    return scheduled_time.astimezone(zoneinfo.ZoneInfo(timezone)).date()


def firing_run(date: dt.date, again: str | None = None) -> str:
    """The run tag of a list's firing on `date`; `again` (a nonce) forces another job that day."""
    return f"watch:{date.isoformat()}" + (f":again:{again}" if again else "")


def run_event(bucket: str, wl: WatchList, run: str, job_date: dt.date) -> dict[str, Any]:
    payload = wl.ref(bucket).model_dump() | {"run": run, "job_date": job_date.isoformat(), "watch": wl.name}
    return {"trawl_run": payload}


def watch_jobs(dynamodb: Any, table: str, name: str, limit: int) -> list[dict[str, Any]]:
    """The watch list's newest `limit` job rows, newest first (the ledger's sparse `watch` index)."""
    response = dynamodb.query(
        TableName=table,
        IndexName="watch",
        KeyConditionExpression="watch_pk = :w",
        ExpressionAttributeValues={":w": {"S": watch_index_key(name)}},
        ScanIndexForward=False,
        Limit=limit,
    )
    return [{k: _deserialise(v) for k, v in item.items()} for item in response.get("Items", [])]


def last_job(dynamodb: Any, table: str, name: str) -> dict[str, Any] | None:
    found = watch_jobs(dynamodb, table, name, 1)
    return found[0] if found else None


def still_running(dynamodb: Any, table: str, job: dict[str, Any]) -> bool:
    """Whether a job has items in flight or a producer at work, from its ledger rows."""
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": f"JOB#{job['job_id']}"}},
        "ConsistentRead": True,
    }
    rows: list[dict[str, Any]] = []
    while True:
        response = dynamodb.query(**request)
        rows += [{k: _deserialise(v) for k, v in item.items()} for item in response.get("Items", [])]
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    kept = [r for r in rows if str(r.get("sk", "")).startswith(("FOLD#", "DELTA#"))]
    counts = Counts.of(counted_rows(kept))
    return job_state(str(job.get("producer", "running")), int(job.get("enqueued", 0)), counts) in (
        "running",
        "retrying",
    )
