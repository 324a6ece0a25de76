"""`trawl status JOB` at 1k, 10k and 100k items (`python -m bench.status`): the job ledger's reads
against the object reads trawl made before it had a ledger (list the job's output, GET every
record, receive the whole DLQ), side by side on the same embedded AWS and the same seeded jobs.
Prints the AWS requests each made, counted as boto3 sends them, and the time each took.
Target: the ledger's requests are the same at every size."""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import count_requests, quiet_handlers, seed_job, table, verdict
from trawl.local.session import local_session
from trawl.stack.describe import Stack
from trawl.stack.jobs import load_manifest
from trawl.stack.ops import job_status
from trawl.stack.submit import message_body, release

SIZES = (1_000, 10_000, 100_000)


def object_read_status(stack: Stack, job_id: str) -> dict[str, int]:
    """What `trawl status JOB` did before the ledger: the manifest, every output record of the
    job, and every message in the platform's DLQ (received, then released)."""
    manifest = load_manifest(stack, job_id)
    assert manifest is not None and manifest.platform is not None
    s3, sqs = stack.endpoint.client("s3"), stack.endpoint.client("sqs")
    prefix = f"output/platform={manifest.platform}/kind={manifest.kind}/dt={manifest.job_date}/{job_id}-"
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]

    def read(key: str) -> dict[str, Any]:
        return dict(json.loads(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()))

    with ThreadPoolExecutor(max_workers=16) as pool:
        records = list(pool.map(read, keys))
    url = stack.dlq_url(manifest.platform)
    handles, dead = [], 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages", []
    ):
        handles += [m["ReceiptHandle"] for m in messages]
        dead += sum(message_body(m["Body"]).get("job_id") == job_id for m in messages)
    release(sqs, url, handles)
    return {"ok": sum(r["status"] == "ok" for r in records), "dead_lettered": dead}


def measure(fn: Any, *args: Any) -> tuple[int, float, Any]:
    with count_requests() as made:
        start = time.perf_counter()
        result = fn(*args)
        seconds = time.perf_counter() - start
    return len(made), seconds, result


def run(sizes: list[int]) -> int:
    quiet_handlers()
    rows: list[list[object]] = []
    ledger_requests: set[int] = set()
    with local_session(workers=False) as session:
        stack = session.stack
        for items in sizes:
            print(f"seeding a {items:,}-item job (ledger rows and output records) ...", flush=True)
            job_id = seed_job(stack, items, objects=True)
            ledger_n, ledger_s, summary = measure(job_status, stack, job_id)
            objects_n, objects_s, counted = measure(object_read_status, stack, job_id)
            assert summary.written_ok == counted["ok"] == items, (summary.written_ok, counted)
            ledger_requests.add(ledger_n)
            rows.append(
                [
                    f"{items:,}",
                    ledger_n,
                    f"{ledger_s * 1000:,.0f}",
                    f"{objects_n:,}",
                    f"{objects_s * 1000:,.0f}",
                    f"{objects_n / ledger_n:,.0f}x",
                    f"{objects_s / ledger_s:,.0f}x",
                ]
            )
    print()
    print("trawl status JOB: the ledger (manifest + one Query) vs object reads (list, GET each, DLQ)")
    headers = ["items", "ledger req", "ledger ms", "objects req", "objects ms", "req ratio", "time ratio"]
    print(table(headers, rows))
    constant = len(ledger_requests) == 1
    print(f"ledger requests constant across sizes: {constant} ({verdict(constant)})")
    return 0 if constant else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", default=",".join(str(n) for n in SIZES), help="item counts, comma-separated"
    )
    args = parser.parse_args()
    sys.exit(run([int(n) for n in args.sizes.split(",")]))


if __name__ == "__main__":
    main()
