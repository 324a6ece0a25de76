"""The dashboard's cost: a page's refresh makes the same number of AWS requests for a job of
10,000 items as for one of 100 (the pages read counter rows, open items and a few records, never
one row or object per item). Counted on the dashboard's own clients, as botocore sends them."""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.common import seed_job
from trawl.local.session import LocalSession
from trawl.stack.describe import Stack
from trawl.stack.jobs import load_manifest
from trawl.ui import start_dashboard
from trawl.ui.server import Running, SharedClients


@pytest.fixture(scope="module")
def dashboard(local: LocalSession) -> Iterator[tuple[Running, SharedClients, httpx.Client]]:
    shared = SharedClients.of(local.stack.endpoint)
    running = start_dashboard(dataclasses.replace(local.stack, endpoint=shared))
    base, token = running.url.split("/?token=")
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get(f"/?token={token}", follow_redirects=True).status_code == 200
        yield running, shared, client
    running.stop()


def write_records(stack: Stack, job_id: str, n: int) -> None:
    """The first `n` of a seeded job's output records, where a worker would have written them
    (writing all 10,000 would take minutes; a page reads a listing of five keys either way)."""
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


def test_a_refresh_costs_the_same_for_10000_items_as_for_100(
    local: LocalSession, dashboard: tuple[Running, SharedClients, httpx.Client]
) -> None:
    _, shared, client = dashboard
    small, large = seed_job(local.stack, 100, objects=True), seed_job(local.stack, 10_000)
    write_records(local.stack, large, 20)
    for job_id, items in ((small, 100), (large, 10_000)):
        page = client.get(f"/jobs/{job_id}").text
        assert f'data-count="written_ok">{items:,}<' in page  # the page shows the ledger's count
        assert page.count('<tr><td class="mono"><a href=') == 5  # a sample of five records

    by_size = {n: requests_of(shared, client, f"/_/jobs/{j}") for n, j in ((100, small), (10_000, large))}
    assert by_size[100] == by_size[10_000], by_size
    assert sum(by_size[10_000].values()) <= 12, by_size[10_000]
    jobs_page = requests_of(shared, client, "/_/jobs")

    started = time.perf_counter()
    assert client.get(f"/jobs/{large}").status_code == 200
    took = time.perf_counter() - started
    print(
        f"\njob page refresh: {sum(by_size[100].values())} AWS requests for 100 items, "
        f"{sum(by_size[10_000].values())} for 10,000 ({dict(by_size[10_000])}); "
        f"jobs page: {sum(jobs_page.values())}; one job page of 10,000 items loaded in {took * 1000:.0f} ms"
    )
