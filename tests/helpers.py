"""Test helpers: run a CSV through a LocalSession and read what a user would see in S3."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlsplit

from bench.common import LocalContext
from bench.common import count_requests as count_requests
from bench.common import seed_job as bench_seed_job
from models import JobManifest, Source, WorkItem
from models.normalise import product_platform
from tests.conftest import load_event
from trawl.local.events import sqs_event
from trawl.local.session import LocalSession
from trawl.stack.describe import FunctionInfo
from trawl.stack.jobs import load_manifest
from trawl.stack.submit import submit, wait_for_jobs
from workers import handler as worker_handler


def run_csv(
    local: LocalSession, tmp_path: Path, name: str, text: str | bytes, platform: str, kind: str
) -> str:
    """Upload `text` as input/<platform>/<kind>/<name>, run the job to the end; its job id."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    job_id = submit(local, path, platform, kind)
    wait_for_jobs(local, [job_id], timeout_s=120)
    return job_id


def manifest(local: LocalSession, job_id: str) -> JobManifest:
    found = load_manifest(local.stack, job_id)
    assert found is not None, f"no manifest for job {job_id}"
    return found


def records(local: LocalSession, job_id: str) -> dict[str, dict[str, Any]]:
    """item_key -> record, for every output object of the job (any partition). An item with two
    objects (under two keys) fails the calling test here: a dict could not show it."""
    s3 = local.stack.endpoint.client("s3")
    found: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=local.stack.bucket, Prefix="output/"):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[1]
            if not name.startswith(job_id + "-"):
                continue
            record = json.loads(s3.get_object(Bucket=local.stack.bucket, Key=obj["Key"])["Body"].read())
            record["_key"] = obj["Key"]
            earlier = found.get(record["item_key"])
            assert earlier is None, (
                f"{record['item_key']} has two objects: {earlier and earlier['_key']}, {obj['Key']}"
            )
            found[record["item_key"]] = record
    return found


def rejects(local: LocalSession, job_id: str) -> list[dict[str, str]]:
    s3 = local.stack.endpoint.client("s3")
    body = s3.get_object(Bucket=local.stack.bucket, Key=f"jobs/{job_id}/rejects.csv")["Body"].read()
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def account_item(job_id: str, username: str, row: int, context: dict[str, str] | None = None) -> WorkItem:
    """A tiktok/account WorkItem as the producer would send it for row `row` of a file."""
    return WorkItem(
        job_id=job_id,
        job_date="2026-11-30",
        platform="tiktok",
        kind="account",
        item_key=username,
        target=username,
        source=Source(bucket="b", key="input/tiktok/account/t.csv", row=row),
        context=context or {},
    )


def receive_batch(local: LocalSession, items: list[WorkItem]) -> dict[str, Any]:
    """Send one message per item to its platform's queue and receive them as Lambda would
    deliver them, as one batch (of any size: SQS hands out 10 a receive)."""
    sqs = local.stack.endpoint.client("sqs")
    platform = items[0].platform
    url = local.stack.queue_url(platform)
    sent = {sqs.send_message(QueueUrl=url, MessageBody=i.model_dump_json())["MessageId"] for i in items}
    messages: list[dict[str, Any]] = []
    while len(messages) < len(items):
        found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
        for m in found.get("Messages", []):
            if m["MessageId"] in sent:
                messages.append(m)
            else:  # handed back by an earlier test: not part of this batch
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    worker = next(f for f in local.stack.workers() if f.env.get("PLATFORM") == platform)
    return sqs_event(messages, worker.event_sources[0].queue_arn, "us-east-1")


def invoke_worker(
    local: LocalSession, platform: str, event: dict[str, Any], timeout_s: int | None = None, **env: str
) -> tuple[dict[str, Any], FunctionInfo]:
    """The platform's worker handler, called in this process with the function's environment
    (plus `env`) and a context whose deadline is `timeout_s` away (the function's Timeout)."""
    function = next(f for f in local.stack.workers() if f.env.get("PLATFORM") == platform)
    base = local.stack.function_env(function) | {"RETRY_BASE_S": "1", "RETRY_MAX_S": "1"}
    deps = worker_handler.build_deps(base | env)
    limited = function if timeout_s is None else dataclasses.replace(function, timeout_s=timeout_s)
    return worker_handler.handle(event, LocalContext(limited), deps), function


def product_item(job_id: str, url: str, row: int) -> WorkItem:
    """A product WorkItem as the producer would send it for row `row` of a file."""
    platform = product_platform(urlsplit(url).hostname or "")
    assert platform is not None, url
    return WorkItem(
        job_id=job_id,
        job_date="2026-11-30",
        platform=platform,
        kind="product",
        item_key=hashlib.sha256(url.encode()).hexdigest()[:16],
        target=url,
        source=Source(bucket="b", key=f"input/{platform}/product/t.csv", row=row),
        context={},
    )


class NoContinuation:
    """The producer's continuer for files too small to need one: a continuation fails the test."""

    def continue_job(self, payload: dict[str, Any]) -> None:
        raise AssertionError(f"a small file must not need a continuation: {payload}")


def uploaded(local: LocalSession, key: str, body: bytes) -> dict[str, Any]:
    """Put the object into the stack's bucket; the real-shaped S3 ObjectCreated event for it."""
    s3 = local.stack.endpoint.client("s3")
    s3.put_object(Bucket=local.stack.bucket, Key=key, Body=body)
    etag = s3.head_object(Bucket=local.stack.bucket, Key=key)["ETag"].strip('"')
    return load_event(
        "s3_object_created.json",
        bucket=local.stack.bucket,
        key=quote_plus(key, safe="/"),
        size=len(body),
        etag=etag,
    )


def process_state(pid: int) -> str:
    """The process's state letter from /proc (R, S, Z, ...), or "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def seed_job(local: LocalSession, items: int, platform: str = "tiktok") -> str:
    """A finished job of `items` items written into the stack directly (bench.common.seed_job)."""
    return bench_seed_job(local.stack, items, platform)
