"""The scheduled pass for items that left the work queues with no worker seeing their end, so
no job reads `running` forever:
- a crash or timeout on an item's last receive, or a body that does not parse, moves the
  message to the DLQ unseen: the pass reads each DLQ of a platform with open jobs and marks
  what it finds dead_lettered (reason `unseen`, or `malformed_message`);
- a message the work queue deleted at the end of its retention was never in any DLQ: once a
  job's producer finished longer ago than the queue keeps messages, its items still without a
  settled outcome are marked `stale`, named from the item keys the producer kept.

Reading a DLQ hides each message it returns for the pass (and shows them all again at its end):
with no visibility timeout SQS may return the same messages on every receive, so a pass could
never see past the first ten. A re-drive meanwhile waits for hidden messages by long polling
until it has seen as many as the ledger holds."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from ledger.settings import LedgerSettings
from ledger.view import read_job, recent_jobs
from models import JobManifest
from models.ledger import expires_at, item_key, item_of, open_index_key

logger = Logger(service="trawl", child=True)

PASS_HIDE_S = 120  # how long a DLQ message read by the pass stays hidden, at most
MAX_RECEIVES = 2_000  # per DLQ per pass: 20,000 messages; the next pass goes on


@dataclass
class Reconciled:
    dead_lettered: int = 0
    stale: int = 0
    unattributable: int = 0
    unannounced: set[str] = field(default_factory=set)  # recent jobs not announced in their state
    producer_states: dict[str, str] = field(default_factory=dict)  # where the manifest knows better


class Reconciler:
    def __init__(self, settings: LedgerSettings, dynamodb: Any, sqs: Any, s3: Any) -> None:
        self._settings = settings
        self._db = dynamodb
        self._sqs = sqs
        self._s3 = s3

    def run(self, now: dt.datetime) -> Reconciled:
        result = Reconciled()
        open_jobs = self._open_jobs(now, result)
        for platform in sorted({str(job.get("platform")) for job in open_jobs.values()}):
            url = self._settings.dead_letter_queues.get(platform)
            if url is not None:
                self._read_dead_letters(url, platform, now, result)
        for job_id, job in open_jobs.items():
            if self._past_retention(job, now):
                result.stale += self._mark_stale(job_id, job, now)
        if result.dead_lettered or result.stale or result.unattributable:
            logger.warning(
                "reconciled items no worker saw end", extra=result.__dict__ | {"open_jobs": len(open_jobs)}
            )
        return result

    def _open_jobs(self, now: dt.datetime, result: Reconciled) -> dict[str, dict[str, Any]]:
        """Jobs of the last reconcile_days whose producer finished and whose items are not all
        accounted for. On the way, the jobs a finished-job check should look at again: every
        one not announced in its state, and those whose producer died without saying so (its
        manifest knows: a lease that lapsed with no retry left)."""
        since = (now - dt.timedelta(days=self._settings.reconcile_days)).isoformat()
        found = {}
        for job in recent_jobs(self._db, self._settings.table, limit=500):
            job_id = str(job["job_id"])
            if str(job.get("created_at", "")) < since:
                continue
            if job.get("producer") in ("running", "retrying"):
                state = self._producer_state(job, now)
                if state is not None and state != job.get("producer"):
                    result.producer_states[job_id] = state
            view = read_job(self._db, self._settings.table, job_id)
            if view is None:
                continue
            if view.job.get("finished_state") != view.state(result.producer_states.get(job_id)):
                result.unannounced.add(job_id)
            if job.get("producer") == "enqueued" and view.in_flight > 0:
                found[job_id] = view.job
        return found

    def _producer_state(self, job: dict[str, Any], now: dt.datetime) -> str | None:
        try:
            body = self._s3.get_object(
                Bucket=str(job["input_bucket"]), Key=f"jobs/{job['job_id']}/manifest.json"
            )
        except Exception:  # no manifest to know better from: the job row stands
            return None
        return JobManifest.model_validate_json(body["Body"].read()).producer_state(now)

    def _read_dead_letters(self, url: str, platform: str, now: dt.datetime, result: Reconciled) -> None:
        handles: list[str] = []
        try:
            for _ in range(MAX_RECEIVES):
                messages = self._sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=PASS_HIDE_S, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    handles.append(message["ReceiptHandle"])
                    self._dead_letter(message, platform, now, result)
        finally:
            for start in range(0, len(handles), 10):
                entries = [
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start : start + 10])
                ]
                self._sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)

    def _dead_letter(
        self, message: dict[str, Any], platform: str, now: dt.datetime, result: Reconciled
    ) -> None:
        try:
            body = json.loads(message["Body"])
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("job_id") or not body.get("item_key"):
            result.unattributable += 1  # neither job nor item: said in the log, kept in the DLQ
            return
        # A body that passes as a WorkItem was dead-lettered by crashes; else it never parsed.
        reason = "unseen" if {"target", "source", "kind"} <= set(body) else "malformed_message"
        token = f"dlq:{message['MessageId']}"
        if self._mark(str(body["job_id"]), str(body["item_key"]), "dead_lettered", reason, token, now):
            result.dead_lettered += 1

    def _past_retention(self, job: dict[str, Any], now: dt.datetime) -> bool:
        url = self._settings.work_queues.get(str(job.get("platform")))
        if url is None:
            return False
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])
        retention = int(attributes["Attributes"]["MessageRetentionPeriod"])
        finished = dt.datetime.fromisoformat(str(job.get("updated_at")))
        return now - finished > dt.timedelta(seconds=retention + 3600)

    def _mark_stale(self, job_id: str, job: dict[str, Any], now: dt.datetime) -> int:
        keys = self._job_items(job_id, job)
        marked = 0
        for start in range(0, len(keys), 100):
            chunk = keys[start : start + 100]
            request = {
                self._settings.table: {
                    "Keys": [{k: {"S": v} for k, v in item_key(job_id, key).items()} for key in chunk],
                    "ProjectionExpression": "pk, outcome",
                }
            }
            known: dict[str, str] = {}
            while request:
                response = self._db.batch_get_item(RequestItems=request)
                for row in response.get("Responses", {}).get(self._settings.table, []):
                    known[item_of(row["pk"]["S"])[1]] = row.get("outcome", {}).get("S", "")
                request = response.get("UnprocessedKeys") or {}
            for key in chunk:
                if known.get(key, "pending") == "pending":
                    token = f"stale:{job_id}"
                    marked += self._mark(job_id, key, "stale", "unseen", token, now)
        return marked

    def _job_items(self, job_id: str, job: dict[str, Any]) -> list[str]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "items.sqlite"
            self._s3.download_file(str(job["input_bucket"]), f"jobs/{job_id}/items.sqlite", str(path))
            with sqlite3.connect(path) as db:
                return [row[0] for row in db.execute("SELECT key FROM seen")]

    def _mark(self, job_id: str, key: str, outcome: str, reason: str, token: str, now: dt.datetime) -> bool:
        """An item's outcome, found by the pass: only an item no worker settled or dead-lettered."""
        try:
            self._db.update_item(
                TableName=self._settings.table,
                Key={k: {"S": v} for k, v in item_key(job_id, key).items()},
                UpdateExpression=(
                    "SET outcome = :outcome, last_delivery = :token, info = :info, expires_at = :ttl, "
                    "open_pk = :open, open_sk = :key"
                ),
                ConditionExpression="attribute_not_exists(outcome) OR outcome = :pending",
                ExpressionAttributeValues={
                    ":outcome": {"S": outcome},
                    ":key": {"S": key},
                    ":token": {"S": token},
                    ":info": {
                        "M": {
                            "updated_at": {"S": now.isoformat()},
                            "reason": {"S": reason},
                            "error": {
                                "S": f"found by the reconcile pass: no worker saw this item end ({reason})"
                            },
                        }
                    },
                    ":ttl": {"N": str(expires_at(now, self._settings.ttl_days))},
                    ":open": {"S": open_index_key(job_id, outcome)},
                    ":pending": {"S": "pending"},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True
