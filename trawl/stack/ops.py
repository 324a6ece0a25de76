"""What users do after an upload, against any stack (`trawl up`, or a deployed one): a job's
status and the recent jobs (from the ledger), re-driving dead-lettered messages back to their
work queue, and replaying the producer's failed events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.view import open_items, read_job
from ledger.view import recent_jobs as ledger_recent_jobs
from trawl.stack.describe import Stack, queue_depth
from trawl.stack.jobs import JobSummary, job_summary
from trawl.stack.submit import message_body, release

# How long a re-drive by job waits for the ledger's dead-lettered items to show in the DLQ
# (a message moves there on the receive after its last failure, once its backoff is over).
REDRIVE_WAIT_S = 30.0


def job_status(stack: Stack, job_id: str) -> JobSummary:
    found = job_summary(stack, job_id)
    if found is None:
        raise LookupError(
            f"no job {job_id} in s3://{stack.bucket}/jobs/ (see `trawl status` for recent jobs)"
        )
    return found


def recent_jobs(stack: Stack, limit: int = 20) -> list[dict[str, Any]]:
    """The ledger's job rows, newest first: one request."""
    return ledger_recent_jobs(stack.endpoint.client("dynamodb"), stack.ledger_table, limit)


def dead_lettered_items(stack: Stack, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """A job's items that need a person (dead-lettered, then stale), with their last reason."""
    dynamodb = stack.endpoint.client("dynamodb")
    found = open_items(dynamodb, stack.ledger_table, job_id, "dead_lettered", limit)
    return found + open_items(dynamodb, stack.ledger_table, job_id, "stale", max(0, limit - len(found)))


@dataclass
class RedriveResult:
    method: str  # "StartMessageMoveTask", "receive-send-delete" or "dry run"
    moved: int
    matched: int  # what the ledger says is dead-lettered (for the job, or in recent jobs)
    left: int  # messages in the DLQ, as SQS approximates it
    note: str | None = None
    task_handle: str | None = None
    by_job: dict[str, int] | None = None


def dead_lettered_by_job(stack: Stack, platform: str, limit: int = 50) -> dict[str, int]:
    """Dead-lettered items per recent job of the platform, from the ledger: one request per job."""
    dynamodb = stack.endpoint.client("dynamodb")
    found = {}
    for job in ledger_recent_jobs(dynamodb, stack.ledger_table, limit):
        if job.get("platform") != platform:
            continue
        view = read_job(dynamodb, stack.ledger_table, str(job["job_id"]))
        if view is not None and view.counts.dead_lettered:
            found[str(job["job_id"])] = view.counts.dead_lettered
    return found


def redrive(
    stack: Stack,
    platform: str,
    job_id: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> RedriveResult:
    """Move DLQ messages back to the platform's work queue. What is there to move comes from
    the ledger, never from receiving the DLQ."""
    sqs = stack.endpoint.client("sqs")
    dlq, work = stack.dlq_url(platform), stack.queue_url(platform)
    if job_id is not None:
        view = read_job(stack.endpoint.client("dynamodb"), stack.ledger_table, job_id)
        expected = view.counts.dead_lettered if view is not None else 0
        by_job = {job_id: expected}
    else:
        by_job = dead_lettered_by_job(stack, platform)
        expected = sum(by_job.values())
    if limit is not None:
        expected = min(expected, limit)
    if dry_run:
        return RedriveResult("dry run", 0, expected, queue_depth(sqs, dlq), by_job=by_job)
    note = None
    if job_id is None and limit is None:
        try:
            task = sqs.start_message_move_task(
                SourceArn=stack.queue_arn(dlq), DestinationArn=stack.queue_arn(work)
            )
        except Exception as exc:  # any refusal means: move them one by one
            note = f"this endpoint does not run StartMessageMoveTask ({type(exc).__name__}); moved one by one"
        else:
            # Asynchronous: SQS moves the messages after this returns (`trawl redrive --status`).
            return RedriveResult(
                "StartMessageMoveTask", 0, expected, queue_depth(sqs, dlq), task_handle=task.get("TaskHandle")
            )
    moved = _move_one_by_one(sqs, dlq, work, job_id, limit, expected, on_progress)
    return RedriveResult("receive-send-delete", moved, expected, queue_depth(sqs, dlq), note, by_job=by_job)


def move_tasks(stack: Stack, platform: str) -> list[dict[str, Any]]:
    """The platform DLQ's recent StartMessageMoveTask tasks, as SQS reports them."""
    sqs = stack.endpoint.client("sqs")
    found: list[dict[str, Any]] = sqs.list_message_move_tasks(
        SourceArn=stack.queue_arn(stack.dlq_url(platform)), MaxResults=10
    ).get("Results", [])
    return found


def _move_one_by_one(
    sqs: Any,
    dlq: str,
    work: str,
    job_id: str | None,
    limit: int | None,
    expected: int,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Receive -> send -> delete, sending before deleting: a crash can duplicate a message but
    never lose one, and a duplicate is harmless because outputs are idempotent. It long-polls
    until it has moved as many messages as the ledger holds dead-lettered (of the job, or of the
    platform's recent jobs): messages on their way to the DLQ, or hidden by another reader, show
    up meanwhile. Without a job it also moves what the ledger does not know of (a message from an
    older job), until the DLQ has nothing more to give."""
    moved, skipped, seen = 0, [], set[str]()
    deadline = time.monotonic() + REDRIVE_WAIT_S
    while not ((limit is not None and moved >= limit) or (job_id is not None and moved >= expected)):
        messages = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=2
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            if moved >= expected or time.monotonic() > deadline:
                break
            continue
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
            on_progress(moved, expected)
    release(sqs, dlq, skipped)
    return moved


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
