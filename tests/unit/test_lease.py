"""The producer's lease protocol, over an in-memory manifest store with S3's conditional-write
semantics and a clock the test moves: a delivery is dropped only after it has seen another
invocation at work, and a dead holder's job is taken over once its lease lapses."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest

from models import JobManifest, ObjectRef
from producer.lease import LeaseLost, Leases
from producer.store import ManifestChanged

START = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START
        self.on_sleep: Callable[[], None] = lambda: None

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        self.on_sleep()


class Manifests:
    """read_manifest / write_manifest as S3 answers them: If-Match and If-None-Match."""

    def __init__(self) -> None:
        self.body: str | None = None

    def etag(self) -> str:
        return hashlib.md5((self.body or "").encode()).hexdigest()

    def read_manifest(self, job_id: str) -> tuple[JobManifest, str] | None:
        return None if self.body is None else (JobManifest.model_validate_json(self.body), self.etag())

    def write_manifest(self, manifest: JobManifest, etag: str | None) -> str:
        if (etag is None) != (self.body is None) or (etag is not None and etag != self.etag()):
            raise ManifestChanged(manifest.job_id)
        self.body = manifest.model_dump_json()
        return self.etag()


def new() -> JobManifest:
    ref = ObjectRef(bucket="b", key="input/tiktok/account/a.csv", etag="e")
    return JobManifest(
        job_id="j",
        input=ref,
        platform=None,
        kind=None,
        job_date=START.date(),
        created_at=START,
        updated_at=START,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Manifests:
    return Manifests()


def leases(store: Manifests, clock: Clock) -> Leases:
    return Leases(store, lease_s=60, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def test_a_delivery_that_sees_the_holder_renew_is_dropped(store: Manifests, clock: Clock) -> None:
    holder = leases(store, clock)
    claim = holder.claim("j", "first", continuation=False, new=new)
    assert claim is not None
    renewals: list[dt.datetime] = []

    def holder_renews() -> None:  # the holder's heartbeat, while the second delivery watches
        if not renewals:
            renewals.append(clock.now)
            holder.write(claim, claim.manifest.model_copy(), hold=True)

    clock.on_sleep = holder_renews
    assert leases(store, clock).claim("j", "duplicate", continuation=False, new=new) is None
    assert renewals and clock.now - START < dt.timedelta(seconds=60)  # it did not wait the lease out


def test_a_dead_holders_job_is_taken_over_when_its_lease_lapses(store: Manifests, clock: Clock) -> None:
    first = leases(store, clock).claim("j", "first", continuation=False, new=new)
    assert first is not None  # ...and then its invocation dies: nobody renews the lease

    taken = leases(store, clock).claim("j", "redelivered", continuation=False, new=new)

    assert taken is not None and taken.manifest.lease is not None
    assert taken.manifest.lease.owner == "redelivered"
    assert clock.now - START >= dt.timedelta(seconds=60)
    assert taken.manifest.attempts == {"first": 1, "redelivered": 1}
    with pytest.raises(LeaseLost):  # the old holder, were it only slow, may write nothing more
        leases(store, clock).write(first, first.manifest.model_copy(), hold=True)


def test_lambdas_retry_of_the_same_event_takes_over_at_once(store: Manifests, clock: Clock) -> None:
    assert leases(store, clock).claim("j", "request-1", continuation=False, new=new) is not None

    retry = leases(store, clock).claim("j", "request-1", continuation=False, new=new)

    assert retry is not None and clock.now == START  # its own earlier attempt is over: no wait
    assert retry.attempt == 2


def test_a_released_job_is_taken_by_its_continuation_and_a_finished_one_by_nobody(
    store: Manifests, clock: Clock
) -> None:
    first = leases(store, clock)
    claim = first.claim("j", "first", continuation=False, new=new)
    assert claim is not None
    checkpointed = claim.manifest.model_copy(update={"checkpoint": {"offset": 10, "row": 3}})
    first.write(claim, checkpointed, hold=False)  # checkpoint, then invoke the continuation

    continued = leases(store, clock).claim("j", "continuation", continuation=True, new=new)
    assert continued is not None and clock.now == START
    leases(store, clock).write(
        continued, continued.manifest.model_copy(update={"status": "enqueued"}), hold=False
    )

    assert leases(store, clock).claim("j", "late duplicate", continuation=False, new=new) is None
    assert leases(Manifests(), clock).claim("j", "stray continuation", continuation=True, new=new) is None
