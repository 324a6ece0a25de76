"""The dashboard's cost: a page's refresh makes the same number of AWS requests for a job of
2,000 items as for one of 100 (the pages read counter rows, open items and a few records, never
one row or object per item). Counted on the dashboard's own clients, as botocore sends them.
`python -m bench.dashboard` measures the same at 10,000 items, with the page's load time."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import httpx
import pytest

from bench.common import seed_job
from bench.dashboard import requests_of, write_records
from trawl.local.session import LocalSession
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


LARGE = 2_000


def test_a_refresh_costs_the_same_for_a_large_job_as_for_100_items(
    local: LocalSession, dashboard: tuple[Running, SharedClients, httpx.Client]
) -> None:
    _, shared, client = dashboard
    small, large = seed_job(local.stack, 100, objects=True), seed_job(local.stack, LARGE)
    write_records(local.stack, large, 20)
    for job_id, items in ((small, 100), (large, LARGE)):
        page = client.get(f"/jobs/{job_id}").text
        assert f'data-count="written_ok">{items:,}<' in page  # the page shows the ledger's count
        assert page.count('<tr><td class="mono"><a href=') == 5  # a sample of five records

    by_size = {n: requests_of(shared, client, f"/_/jobs/{j}") for n, j in ((100, small), (LARGE, large))}
    assert by_size[100] == by_size[LARGE], by_size
    assert sum(by_size[LARGE].values()) <= 12, by_size[LARGE]
    jobs_page = requests_of(shared, client, "/_/jobs")

    started = time.perf_counter()
    assert client.get(f"/jobs/{large}").status_code == 200
    took = time.perf_counter() - started
    print(
        f"\njob page refresh: {sum(by_size[100].values())} AWS requests for 100 items, "
        f"{sum(by_size[LARGE].values())} for {LARGE:,} ({dict(by_size[LARGE])}); "
        f"jobs page: {sum(jobs_page.values())}; "
        f"one job page of {LARGE:,} items loaded in {took * 1000:.0f} ms"
    )
