"""What users do after an upload, against any stack (`trawl up`, or a deployed one): a job's
status, the recent jobs, and re-driving dead-lettered messages back to their work queue."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from models import JobManifest
from trawl.local.pipeline import (
    JobSummary,
    dead_letters,
    load_manifest,
    message_body,
    record_outline,
    release,
)
from trawl.local.stack import Stack, queue_depth


def _job_records(stack: Stack, m: JobManifest) -> list[dict[str, Any]]:
    s3 = stack.endpoint.client("s3")
    prefix = f"output/platform={m.platform}/kind={m.kind}/dt={m.job_date}/{m.job_id}-"
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]

    def read(key: str) -> dict[str, Any]:
        body = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode("utf-8")
        return record_outline(body, key.endswith(".csv"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(read, keys))


def job_status(stack: Stack, job_id: str) -> JobSummary:
    m = load_manifest(stack, job_id)
    if m is None:
        raise LookupError(
            f"no job {job_id} in s3://{stack.bucket}/jobs/ (see `trawl status` for recent jobs)"
        )
    records = _job_records(stack, m) if m.platform else []
    settled_rows = {r.get("source", {}).get("row") for r in records}
    dead = dead_letters(stack, m.platform) if m.platform else []
    dead_rows = {b.get("source", {}).get("row") for b in dead if b.get("job_id") == job_id}
    # An item is settled once it has a record (per video for tiktok/videos: its row has one) or
    # sits in the DLQ; what is neither is still on its way.
    in_flight = max(0, m.enqueued - len(settled_rows | dead_rows)) if m.status != "failed" else 0
    statuses = Counter(str(r.get("status")) for r in records)
    return JobSummary.of(stack.bucket, m, statuses, len(dead_rows), in_flight, None)


def recent_jobs(stack: Stack, limit: int = 20) -> list[JobManifest]:
    s3 = stack.endpoint.client("s3")
    manifests = [
        obj
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix="jobs/")
        for obj in page.get("Contents", [])
        if obj["Key"].endswith("/manifest.json")
    ]
    manifests.sort(key=lambda obj: obj["LastModified"], reverse=True)
    found = [load_manifest(stack, obj["Key"].split("/")[1]) for obj in manifests[:limit]]
    return [m for m in found if m is not None]


@dataclass
class RedriveResult:
    method: str  # "StartMessageMoveTask" or "receive-send-delete"
    moved: int
    matched: int
    left: int
    note: str | None = None


def redrive(
    stack: Stack,
    platform: str,
    job_id: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RedriveResult:
    """Move DLQ messages back to the platform's work queue."""
    sqs = stack.endpoint.client("sqs")
    dlq, work = stack.dlq_url(platform), stack.queue_url(platform)
    if dry_run:
        bodies = dead_letters(stack, platform)
        matched = [b for b in bodies if job_id is None or b.get("job_id") == job_id]
        n = len(matched) if limit is None else min(limit, len(matched))
        return RedriveResult("dry run", 0, n, len(bodies))
    note = None
    if job_id is None and limit is None:
        try:
            sqs.start_message_move_task(SourceArn=stack.queue_arn(dlq), DestinationArn=stack.queue_arn(work))
        except Exception as exc:  # any refusal means: move them one by one
            note = f"this endpoint does not run StartMessageMoveTask ({type(exc).__name__}); moved one by one"
        else:
            return RedriveResult("StartMessageMoveTask", queue_depth(sqs, dlq), queue_depth(sqs, dlq), 0)
    return _move_one_by_one(sqs, dlq, work, job_id, limit, on_progress, note)


def _move_one_by_one(
    sqs: Any,
    dlq: str,
    work: str,
    job_id: str | None,
    limit: int | None,
    on_progress: Callable[[int, int], None] | None,
    note: str | None,
) -> RedriveResult:
    """Receive -> send -> delete, sending before deleting: a crash can duplicate a message but
    never lose one, and a duplicate is harmless because outputs are idempotent."""
    total = queue_depth(sqs, dlq)
    moved, skipped, seen = 0, [], set[str]()
    while limit is None or moved < limit:
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        )
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update(m["MessageId"] for m in fresh)
        wanted = [m for m in fresh if job_id is None or message_body(m["Body"]).get("job_id") == job_id]
        if limit is not None:
            wanted = wanted[: limit - moved]
        skipped += [m["ReceiptHandle"] for m in fresh if m not in wanted]
        if wanted:
            entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(wanted)]
            failed = {
                f["Id"] for f in sqs.send_message_batch(QueueUrl=work, Entries=entries).get("Failed", [])
            }
            sent = [m for i, m in enumerate(wanted) if str(i) not in failed]
            skipped += [m["ReceiptHandle"] for i, m in enumerate(wanted) if str(i) in failed]
            if sent:
                sqs.delete_message_batch(
                    QueueUrl=dlq,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(sent)],
                )
            moved += len(sent)
        if on_progress:
            on_progress(moved, total)
    release(sqs, dlq, skipped)
    return RedriveResult("receive-send-delete", moved, moved, queue_depth(sqs, dlq), note)


@dataclass(frozen=True)
class FailedEvent:
    """One producer invocation whose retries ran out, as its failure queue holds it."""

    input_key: str
    request_id: str
    error: str
    payload: dict[str, Any]


@dataclass
class ReplayResult:
    found: list[FailedEvent]
    replayed: int


def replay(stack: Stack, dry_run: bool = False) -> ReplayResult:
    """Invoke the producer again (asynchronously, as S3 did) with every event in its failure
    queue; each is deleted once Lambda has accepted it. The job resumes from its checkpoint."""
    sqs = stack.endpoint.client("sqs")
    url = stack.outputs["ProducerFailureQueueUrl"]
    function = stack.outputs["ProducerFunctionName"]
    found: list[FailedEvent] = []
    handles: list[str] = []
    replayed = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            event = _failed_event(message["Body"])
            found.append(event)
            if dry_run:
                handles.append(message["ReceiptHandle"])
                continue
            stack.endpoint.client("lambda").invoke(
                FunctionName=function, InvocationType="Event", Payload=json.dumps(event.payload).encode()
            )
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            replayed += 1
    release(sqs, url, handles)
    return ReplayResult(found, replayed)


def _failed_event(body: str) -> FailedEvent:
    """An on-failure destination's invocation record, or a plain event (a dead-letter queue's)."""
    record = message_body(body)
    payload = record.get("requestPayload", record)
    context = record.get("requestContext", {})
    error = record.get("responsePayload", {}).get("errorMessage", "") if isinstance(record, dict) else ""
    if "trawl_continuation" in payload:
        key = payload["trawl_continuation"].get("key", "?")
    else:
        key = next(
            (r.get("s3", {}).get("object", {}).get("key", "?") for r in payload.get("Records", [])), "?"
        )
    return FailedEvent(key, str(context.get("requestId", "")), str(error), payload)
