"""The API key's shared rate budget (workers/ratelimit.py): the 60-second window it guarantees
across workers, the cut a 429 makes (the key's, or one platform's alone), the workers' calls
under it, and a batch of 100 under a deadline. Against the embedded DynamoDB, except the
simulations of minutes of takes, which run on an in-memory table with the same conditional
writes (tests/fakes.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common import LocalContext, most_in_window
from tests.fakes import MemoryDynamoDB
from tests.helpers import account_item, invoke_worker, product_item, receive_batch, records
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Faults
from trawl.stack.jobs import rate_now
from trawl.stack.submit import submit, wait_for_jobs
from workers import handler as worker_handler
from workers.ratelimit import RateLimiter, limits

ZYTE_RPM = 6000


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSession]:
    with local_session(parameters={"ZyteRequestsPerMinute": str(ZYTE_RPM)}) as session:
        session.runtime.stop()  # these tests play the event source mapping themselves
        yield session


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _limiter(local: LocalSession, key: str, per_minute: int, platform: str, clock: Clock) -> RateLimiter:
    db = local.stack.endpoint.client("dynamodb")
    return RateLimiter(db, local.stack.ledger_table, key, per_minute, platform, clock=clock)


def _in_memory(db: MemoryDynamoDB, key: str, per_minute: int, platform: str, clock: Clock) -> RateLimiter:
    return RateLimiter(db, "ledger", key, per_minute, platform, clock=clock)


def test_two_workers_on_one_key_never_exceed_the_limit_in_any_60_seconds() -> None:
    """Two environments (Shopee's and Tokopedia's workers) take calls from one budget as fast
    as it lets them, for five minutes of clock: no 60 s window holds more than the limit, and
    together they use at least nine tenths of it."""
    clock, per_minute, db = Clock(), 120, MemoryDynamoDB()
    shopee = _in_memory(db, "window-test", per_minute, "shopee", clock)
    tokopedia = _in_memory(db, "window-test", per_minute, "tokopedia", clock)
    calls: dict[str, list[float]] = {"shopee": [], "tokopedia": []}
    end, order = clock.now + 300, random.Random(7)
    while clock.now < end:
        waits = []
        pair = [("shopee", shopee), ("tokopedia", tokopedia)]
        order.shuffle(pair)  # whichever asks first, as concurrent callers do
        for name, limiter in pair:
            granted, wait = limiter.take(3)
            calls[name] += [clock.now] * granted
            waits.append(wait)
        if all(waits):
            clock.now += min(waits)

    every = calls["shopee"] + calls["tokopedia"]
    assert most_in_window(every) <= per_minute
    assert len(every) >= 0.9 * per_minute * 5
    assert min(len(calls["shopee"]), len(calls["tokopedia"])) > len(every) / 4  # both got a share


def test_an_idle_platform_leaves_its_share_to_the_others() -> None:
    clock, per_minute = Clock(), 600
    alone = _in_memory(MemoryDynamoDB(), "share-test", per_minute, "shopee", clock)
    taken = 0
    end = clock.now + 120
    while clock.now < end:
        granted, wait = alone.take(10)
        taken += granted
        clock.now += wait
    assert taken >= 0.9 * per_minute * 2


def test_a_user_limit_429_halves_the_keys_rate_and_it_grows_back(local: LocalSession) -> None:
    clock, per_minute = Clock(), 600
    limiter = _limiter(local, "cut-test", per_minute, "shopee", clock)
    other = _limiter(local, "cut-test", per_minute, "tokopedia", clock)
    capacity, rate = limits(per_minute)
    assert limiter.take(1000)[0] == int(capacity)  # a full bucket: the burst, and no more

    asyncio.run(limiter.throttled("user"))
    asyncio.run(limiter.throttled("user"))  # the same burst of 429s: one cut
    clock.now += 1.0
    earned = other.take(1000)[0]

    assert rate * 0.5 - 1 <= earned <= rate * 0.5 * 1.1 + 1  # every worker on the key slowed
    clock.now += 120  # no 429 for two minutes: the rate is whole again
    other.take(1000)
    clock.now += 1.0
    assert other.take(1000)[0] >= int(rate * 0.95)


def test_a_domain_limit_429_slows_only_that_platform() -> None:
    """After Shopee's website answers 429, both platforms take as fast as they may for 20 s:
    Shopee runs at its own cut rate (half, growing back), and the key's whole rate is still
    used, Tokopedia taking the rest; a cut of the key's rate would have lowered the total."""
    clock, per_minute, db = Clock(), 600, MemoryDynamoDB()
    shopee = _in_memory(db, "domain-test", per_minute, "shopee", clock)
    tokopedia = _in_memory(db, "domain-test", per_minute, "tokopedia", clock)
    _, rate = limits(per_minute)
    shopee.take(1000)  # empty the bucket
    asyncio.run(shopee.throttled("domain"))
    got = {"shopee": 0, "tokopedia": 0}
    end = clock.now + 20
    while clock.now < end:
        waits = []
        for name, limiter in (("shopee", shopee), ("tokopedia", tokopedia)):
            granted, wait = limiter.take(3)
            got[name] += granted
            waits.append(wait)
        if all(waits):
            clock.now += min(waits)

    # Shopee's factor grows from 0.5 to 0.83 over the 20 s: two thirds of the rate on average.
    assert got["shopee"] <= rate * 20 * (2 / 3) + 2
    assert got["tokopedia"] >= rate * 20 * 0.25
    assert sum(got.values()) >= rate * 20 * 0.9


def test_a_take_that_loses_the_write_to_another_worker_reads_again() -> None:
    """Between Shopee's read of the bucket and its write, Tokopedia empties it: Shopee's write
    is refused (the row's version moved on), and it reads again and waits, so the bucket's
    tokens are spent once, not by both."""
    clock, per_minute, db = Clock(), 600, MemoryDynamoDB()
    shopee = _in_memory(db, "race-test", per_minute, "shopee", clock)
    tokopedia = _in_memory(db, "race-test", per_minute, "tokopedia", clock)
    capacity, _ = limits(per_minute)
    assert shopee.take(1) == (1, 0.0)
    taken_meanwhile: list[int] = []
    db.before_next_put = lambda: taken_meanwhile.append(tokopedia.take(1000)[0])

    granted, wait = shopee.take(1000)

    assert taken_meanwhile == [int(capacity) - 1]
    assert granted == 0 and wait > 0


def test_workers_calls_stay_inside_the_budget_and_a_domain_429_slows_only_its_platform(
    local: LocalSession,
) -> None:
    """Real worker handlers against the sandbox: Shopee's website allows 5 calls a minute, the
    key 6,000. Shopee's items beyond the 5 get Zyte's over-domain-limit 429 and are handed back
    with nobody else slowed: Tokopedia's batch right after is fetched whole, without a 429, and
    `trawl status`'s rate line shows Shopee alone cut."""
    local.sandbox.set_faults(Faults.parse("domain-rpm=shopee:5"))
    job_id = "ab12cd34ef560001"
    shopee_urls = [f"https://shopee.co.id/product/7{n:05d}/8{n:06d}" for n in range(10)]
    tokopedia_urls = [f"https://www.tokopedia.com/shop{n}/item-{n}" for n in range(10)]
    try:
        answer, _ = invoke_worker(local, "shopee", _products(local, job_id, shopee_urls), timeout_s=8)
        rate = rate_now(local.stack, local.stack.endpoint.client("dynamodb"), "shopee")
        started = time.monotonic()
        tokopedia_answer, _ = invoke_worker(local, "tokopedia", _products(local, job_id, tokopedia_urls))
        tokopedia_s = time.monotonic() - started
    finally:
        local.sandbox.set_faults(Faults({}))

    assert len(answer["batchItemFailures"]) == 5  # the website's limit, waited on, then handed back
    assert tokopedia_answer["batchItemFailures"] == []
    assert tokopedia_s < 5
    calls = [c for c in local.sandbox.call_log() if c.platform in ("shopee", "tokopedia")]
    assert {c.platform for c in calls if c.status == 429} == {"shopee"}
    assert {c.throttled for c in calls if c.status == 429} == {"domain"}
    assert rate is not None
    assert rate["allowed_per_minute"] == ZYTE_RPM  # the key is not cut
    assert rate["platform_allowed_per_minute"] <= ZYTE_RPM * 0.6  # Shopee alone is (half, growing back)
    written = {r["target"] for r in records(local, job_id).values()}
    assert set(tokopedia_urls) <= written


def test_a_batch_of_100_under_a_deadline_starts_no_call_after_the_margin(local: LocalSession) -> None:
    """100 items, 10 fetched at a time, 500 ms a call, 4 s to live with a 1 s margin: the calls
    that fit start, none after the margin, and the items not fetched are handed back."""
    local.sandbox.set_faults(Faults({}, latency_ms=500))
    job_id = "ab12cd34ef560002"
    names = [f"deadline_{n:03d}" for n in range(100)]
    event = receive_batch(local, [account_item(job_id, name, row) for row, name in enumerate(names, 2)])
    before = len(local.sandbox.call_log())
    function = next(f for f in local.stack.workers() if f.env.get("PLATFORM") == "tiktok")
    env = local.stack.function_env(function) | {"RETRY_BASE_S": "1", "RETRY_MAX_S": "1"}
    deps = worker_handler.build_deps(env | {"DEADLINE_MARGIN_MS": "1000"})
    try:
        # The deadline counts from the context's creation, once the handler's clients are built
        # (which a loaded machine may take a while over).
        started = time.time()
        context = LocalContext(dataclasses.replace(function, timeout_s=4))
        answer = worker_handler.handle(event, context, deps)
    finally:
        local.sandbox.set_faults(Faults({}))

    calls = local.sandbox.call_log()[before:]
    last_start = max(c.at for c in calls)
    # A call may start while 1 s (the margin) + 1 s (the shortest call) is left of the 4.
    assert last_start <= started + 2.0 + 0.3
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    ids = {r["messageId"]: r for r in event["Records"]}
    written = set(records(local, job_id))
    assert 0 < len(written) < 100 and len(failed) == 100 - len(written)
    assert {_body(ids[i])["item_key"] for i in failed}.isdisjoint(written)
    assert len(calls) == len(written)  # each call started was one item fetched


def _products(local: LocalSession, job_id: str, urls: list[str]) -> dict[str, Any]:
    return receive_batch(local, [product_item(job_id, url, row) for row, url in enumerate(urls, 2)])


def _body(record: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(record["body"])
    return body


ARRIVAL_JITTER_S = 0.5


def test_two_worker_environments_share_the_budget(tmp_path: Path) -> None:
    """Through the local stack: Shopee's and Tokopedia's jobs run at once, each platform's
    worker in its own execution environment, on a key allowing 300 calls a minute (a burst of
    15, then 4.75 a second). The Zyte calls the sandbox saw stay inside that envelope together."""
    per_minute = 300
    capacity, rate = limits(per_minute)
    with local_session(parameters={"ZyteRequestsPerMinute": str(per_minute)}) as session:
        jobs = []
        for platform, urls in (
            ("shopee", [f"https://shopee.co.id/product/5{n:05d}/6{n:06d}" for n in range(20)]),
            ("tokopedia", [f"https://www.tokopedia.com/envshop{n}/thing-{n}" for n in range(20)]),
        ):
            path = tmp_path / f"{platform}.csv"
            path.write_text("url\n" + "".join(f"{url}\n" for url in urls))
            jobs.append(submit(session, path, platform, "product"))
        wait_for_jobs(session, jobs, timeout_s=120)
        calls = [c for c in session.sandbox.call_log() if c.api == "zyte" and c.status != 429]

    times = sorted(c.at for c in calls)
    assert len(times) == 40
    # The sandbox sees a call when it arrives, some time after its token was taken: on a loaded
    # two-core machine up to about half a second, which can bunch the arrivals of calls whose
    # takes were spread out. The simulations above check the takes themselves, exactly.
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            allowed = capacity + rate * (times[j] - start + ARRIVAL_JITTER_S) + 1
            assert j - i + 1 <= allowed, (i, j, times[j] - start)
    by_platform = {p: [c.at for c in calls if c.platform == p] for p in ("shopee", "tokopedia")}
    assert min(by_platform["shopee"]) < max(by_platform["tokopedia"])  # they ran at the same time
    assert min(by_platform["tokopedia"]) < max(by_platform["shopee"])
