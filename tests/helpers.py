"""Test helpers: run a CSV through a LocalSession and read what a user would see in S3."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from bench.common import count_requests as count_requests
from bench.common import seed_job as bench_seed_job
from models import JobManifest, Source, WorkItem
from tests.conftest import load_event
from trawl.local.session import LocalSession
from trawl.stack.jobs import load_manifest
from trawl.stack.submit import submit, wait_for_jobs


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
