"""Runs jobs on any stack: the upload, waiting for each job by its own counts, and the copy of
output/ and jobs/ to the data dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from boto3.s3.transfer import TransferConfig

from models import JobManifest, ObjectRef
from producer.job import job_id_for
from trawl.stack.describe import Stack
from trawl.stack.jobs import JobSummary, job_summary, load_manifest
from trawl.stack.watch import invoke_producer, rerun_event


class Triggers(Protocol):
    """What stands in for S3's notification to the producer when trawl runs the functions
    itself (a private local stack)."""

    def upload_event(self, bucket: str, key: str) -> dict[str, Any]: ...

    def deliver(self, event: dict[str, Any]) -> str: ...


class Session(Protocol):
    """A stack to run jobs on. With a runtime, trawl invokes the functions itself (a private
    local stack); without one the stack's own triggers do (`trawl up`, or AWS)."""

    @property
    def stack(self) -> Stack: ...

    @property
    def runtime(self) -> Triggers | None: ...


@dataclass
class AttachedSession:
    stack: Stack
    runtime: None = None


# One PUT up to S3's limit for one (5 GiB), so the object's ETag is its MD5 and a file's job id
# is known before it is uploaded.
_SINGLE_PART = TransferConfig(multipart_threshold=5 * 1024**3)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    # The stack had processed these very bytes under this key before (same bucket, key and ETag:
    # the same job): nothing was uploaded, and job_id is that earlier job.
    earlier: JobManifest | None = None


def submit(session: Session, path: Path, platform: str, kind: str) -> str:
    """Upload a CSV to input/<platform>/<kind>/ and return its job id (an earlier job's, for
    bytes the stack has processed before)."""
    return submit_file(session, path, platform, kind).job_id


def submit_file(session: Session, path: Path, platform: str, kind: str, again: bool = False) -> Submitted:
    """Upload a CSV to input/<platform>/<kind>/ and return its job. A file the stack has
    processed before is not a new job: the earlier one is returned, or with `again` a re-run of
    it is started (a new job, dated today)."""
    stack = session.stack
    key = f"input/{platform}/{kind}/{path.name}"
    digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    known = job_id_for(ObjectRef(bucket=stack.bucket, key=key, etag=digest))
    earlier = load_manifest(stack, known)
    if earlier is not None and not _input_changed(stack, earlier):
        if not again:
            return Submitted(known, earlier)
        return Submitted(start_rerun(session, known))
    started = dt.datetime.now(dt.UTC)
    stack.endpoint.client("s3").upload_file(str(path), stack.bucket, key, Config=_SINGLE_PART)
    if session.runtime is not None:
        session.runtime.deliver(session.runtime.upload_event(stack.bucket, key))
    job_id = job_id_of(stack, key)
    found = load_manifest(stack, job_id) if job_id != known else None
    if found is not None and found.created_at < started - dt.timedelta(seconds=5):
        return Submitted(start_rerun(session, job_id)) if again else Submitted(job_id, found)
    return Submitted(job_id)


def _input_changed(stack: Stack, manifest: JobManifest) -> bool:
    """Whether the earlier job's key now holds other bytes (then this upload is a job of its own)."""
    ref = manifest.input
    try:
        head = stack.endpoint.client("s3").head_object(Bucket=ref.bucket, Key=ref.key)
    except Exception:
        return True
    return bool(head["ETag"].strip('"') != ref.etag)


def start_rerun(session: Session, job_id: str) -> str:
    """Fetch a job's input again as a new job dated today; the new job's id."""
    event, new_id = rerun_event(session.stack, job_id)
    if session.runtime is not None:
        session.runtime.deliver(event)
    else:
        invoke_producer(session.stack, event)
    return new_id


def job_id_of(stack: Stack, key: str) -> str:
    etag = stack.endpoint.client("s3").head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
    return job_id_for(ObjectRef(bucket=stack.bucket, key=key, etag=etag))


# job_id, items done, items enqueued so far, whether the producer is still enqueuing
ProgressFn = Callable[[str, int, int, bool], None]


def wait_for_jobs(
    session: Session, job_ids: list[str], on_progress: ProgressFn | None = None, timeout_s: float = 3600
) -> list[JobSummary]:
    """Until each job has settled (done or failed), by its own manifest and ledger counts: other
    jobs on the same stack do not hold it up. Their summaries, in order."""
    deadline = time.monotonic() + timeout_s
    stack = session.stack
    while True:
        found = {job_id: job_summary(stack, job_id) for job_id in job_ids}
        if on_progress:
            for job_id, summary in found.items():
                if summary is not None:
                    done = summary.enqueued - summary.in_flight
                    on_progress(job_id, done, summary.enqueued, summary.status != "enqueued")
        if all(s is not None and s.settled for s in found.values()):
            return [s for s in found.values() if s is not None]
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs {', '.join(job_ids)} did not finish within {timeout_s:.0f} s")
        time.sleep(0.2)


def message_body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def release(sqs: Any, url: str, handles: list[str]) -> None:
    """Make received messages visible again at once."""
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def copy_to_data_dir(stack: Stack, data_dir: Path, prefixes: tuple[str, ...] = ("output/", "jobs/")) -> int:
    """Copy the bucket's output/ and jobs/ trees so results outlive the embedded stack."""
    s3 = stack.endpoint.client("s3")
    keys = [
        obj["Key"]
        for prefix in prefixes
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if "/checkpoint/" not in obj["Key"] and not obj["Key"].endswith("/items.sqlite")
    ]

    def fetch(key: str) -> None:
        target = data_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(fetch, keys))
    return len(keys)
