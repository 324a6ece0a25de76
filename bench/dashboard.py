"""The dashboard's cost per refresh (`python -m bench.dashboard`): one job page of a job seeded
with 100 items and of one with 10,000, on the same embedded AWS. Prints the AWS requests one
refresh makes (counted on the dashboard's own clients as botocore sends them) and how long one
page load takes. Target: the same requests at both sizes."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from typing import Any

import httpx

from bench.common import quiet_handlers, seed_job, table
from trawl.local.session import local_session
from trawl.stack.describe import Stack
from trawl.stack.jobs import load_manifest
from trawl.ui import start_dashboard
from trawl.ui.server import SharedClients

SIZES = (100, 10_000)


def write_records(stack: Stack, job_id: str, n: int) -> None:
    """The first `n` of a seeded job's output records, where a worker would have written them (a
    page reads a listing of five keys, however many there are)."""
    manifest = load_manifest(stack, job_id)
    assert manifest is not None
    s3 = stack.endpoint.client("s3")
    for row in range(n):
        name = f"seeded{row:06d}"
        record = {"job_id": job_id, "item_key": name, "status": "ok", "data": {"followers": row}}
        key = f"output/platform=tiktok/kind=account/dt={manifest.job_date}/{job_id}-{name}.json"
        s3.put_object(Bucket=stack.bucket, Key=key, Body=(json.dumps(record) + "\n").encode())


def requests_of(shared: SharedClients, client: httpx.Client, path: str) -> Counter[str]:
    """The AWS requests one GET of `path` made, by operation (after a first GET that made the
    clients the page uses)."""
    assert client.get(path).status_code == 200
    made: Counter[str] = Counter()

    def sent(event_name: str, **_: Any) -> None:
        made[".".join(event_name.split(".")[1:3])] += 1

    hooked = list(shared.made().values())
    for aws in hooked:
        aws.meta.events.register("before-send", sent)
    try:
        assert client.get(path).status_code == 200
    finally:
        for aws in hooked:
            aws.meta.events.unregister("before-send", sent)
    return made


def main() -> None:
    quiet_handlers()
    rows = []
    with local_session() as local:
        shared = SharedClients.of(local.stack.endpoint)
        running = start_dashboard(dataclasses.replace(local.stack, endpoint=shared))
        base, token = running.url.split("/?token=")
        try:
            with httpx.Client(base_url=base, timeout=120) as client:
                client.get(f"/?token={token}", follow_redirects=True).raise_for_status()
                for size in SIZES:
                    job_id = seed_job(local.stack, size)
                    write_records(local.stack, job_id, 20)
                    made = requests_of(shared, client, f"/_/jobs/{job_id}")
                    started = time.perf_counter()
                    client.get(f"/jobs/{job_id}").raise_for_status()
                    took_ms = (time.perf_counter() - started) * 1000
                    rows.append([f"{size:,}", str(sum(made.values())), f"{took_ms:.0f}"])
        finally:
            running.stop()
    print(table(["items", "AWS requests per refresh", "job page load (ms)"], rows))
    same = len({r[1] for r in rows}) == 1
    sizes = " and ".join(r[0] for r in rows)
    print(f"requests per refresh {'the same' if same else 'NOT the same'} at {sizes} items")


if __name__ == "__main__":
    main()
