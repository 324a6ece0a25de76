"""pydantic models for every wire shape: the input row, the SQS message (WorkItem), the output
record and the job manifest. Both sides of each wire validate with these."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.targets import Kind, Platform

SCHEMA_VERSION: Literal[1] = 1

# Permanent outcomes are written as records with this status; retryable ones never are.
Status = Literal[
    "ok", "not_found", "private", "unavailable", "invalid_target", "domain_refused", "not_a_product"
]
ITEM_KEY_PATTERN = r"^[A-Za-z0-9_.=-]+$"
MAX_ITEM_KEY = 200
MAX_TARGET = 2048
ItemKey = Annotated[str, Field(min_length=1, max_length=MAX_ITEM_KEY, pattern=ITEM_KEY_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    bucket: str
    key: str
    row: int = Field(ge=2)


class WorkItem(_Model):
    """The SQS message body: one item to fetch. Paginated kinds carry their cursor onwards."""

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str = Field(pattern=r"^[a-f0-9]{16}$")
    job_date: dt.date
    platform: Platform
    kind: Kind
    item_key: ItemKey
    target: str = Field(min_length=1, max_length=MAX_TARGET)
    source: Source
    context: dict[str, str] = Field(default_factory=dict)
    cursor: str | None = Field(default=None, pattern=r"^[0-9]+$")
    page: int = Field(default=0, ge=0)
    fetched: int = Field(default=0, ge=0)
    sec_uid: str | None = None


class AccountData(_Model):
    """id and unique_id identify the account; every other field is None when the upstream
    left it out or sent a value that does not parse."""

    id: str
    unique_id: str
    sec_uid: str | None
    nickname: str | None
    verified: bool | None
    private: bool | None
    followers: int | None
    following: int | None
    likes: int | None
    videos: int | None


class VideoData(_Model):
    """id identifies the video; the rest is None when missing or unparseable upstream."""

    id: str
    author: str | None
    description: str | None
    created_at: dt.datetime | None
    plays: int | None
    likes: int | None
    comments: int | None
    shares: int | None


class ProductData(_Model):
    """Every field is None when Zyte left it out or sent a value that does not parse."""

    name: str | None
    price: str | None
    regular_price: str | None
    currency: str | None
    availability: str | None
    sku: str | None
    brand: str | None
    rating: float | None
    review_count: int | None
    canonical_url: str | None
    probability: float | None

    @field_validator("price", "regular_price")
    @classmethod
    def _decimal_string(cls, value: str | None) -> str | None:
        # Prices stay decimal strings end to end: a float would round them.
        if value is not None and not value.replace(".", "", 1).isdigit():
            raise ValueError(f"price must be a decimal string like '10500.99', got {value!r}")
        return value


class OutputRecord(_Model):
    """One record per item (per video for tiktok/videos), written to S3 as one JSON line or CSV row."""

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    platform: Platform
    kind: Kind
    item_key: ItemKey
    target: str
    status: Status
    fetched_at: dt.datetime
    source: Source
    context: dict[str, str] = Field(default_factory=dict)
    data: AccountData | VideoData | ProductData | None = None
    detail: str | None = None


class ObjectRef(_Model):
    bucket: str
    key: str
    etag: str


class Lease(_Model):
    """Which producer invocation works on a job, until when. The holder renews it while it
    works (a heartbeat); an invocation that finds it lapsed knows the holder is gone."""

    owner: str  # the Lambda request id, which Lambda keeps when it retries the same event
    expires_at: dt.datetime


class JobManifest(BaseModel):
    """What the producer did with one input file. rows_read = enqueued + duplicates + rejected.

    status: running (an invocation works on it, or a continuation is on its way), retrying (an
    invocation failed for a reason that was not the file's, and Lambda retries it), enqueued
    (every row answered), failed (the file's fault, or the retries ran out)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    input: ObjectRef
    platform: str | None
    kind: str | None
    job_date: dt.date
    # What made the job besides its upload (docs/contract.md, "What makes a new job"): a re-run
    # ("rerun:<nonce>") or a watch list's firing ("watch:<date>"); None for an upload.
    run: str | None = None
    watch: str | None = None  # the watch list's name, for a firing
    rerun_of: str | None = None  # the job a re-run fetched again
    created_at: dt.datetime
    updated_at: dt.datetime
    status: Literal["running", "retrying", "enqueued", "failed"] = "running"
    message: str | None = None
    # A failure that was not the file's fault (an AWS error, say): a later delivery of the same
    # upload, or a replay of the failed event, resumes the job from its checkpoint.
    retryable: bool = False
    target_column: str | None = None
    rows_read: int = 0
    enqueued: int = 0
    duplicates: int = 0
    rejected: int = 0
    invocations: int = 0
    checkpoint: dict[str, Any] | None = None
    lease: Lease | None = None
    # Invocations per Lambda request id, so the attempt that fails last can say "failed".
    attempts: dict[str, int] = Field(default_factory=dict)
    max_attempts: int = 3  # Lambda's first attempt + MaximumRetryAttempts
    # How long after a lease lapses (an invocation that died) Lambda may still retry it.
    retry_horizon_s: int = 600
    # How long a continuation may wait in Lambda's queue of asynchronous events before it runs
    # (the producer's MaximumEventAgeInSeconds): under throttling, or behind local pacing.
    max_event_age_s: int = 21_600

    def producer_state(self, now: dt.datetime) -> Literal["running", "retrying", "enqueued", "failed"]:
        """The status, with what a dead invocation could not write itself: a lease that lapsed
        with nobody renewing it means the holder died (a timeout, out of memory). Lambda retries
        it while attempts remain and the retry horizon has not passed; after that it gave up."""
        if self.status in ("enqueued", "failed"):
            return self.status
        quiet_s = (now - self.updated_at).total_seconds()
        if self.lease is None or self.lease.expires_at > now:
            # Held by a live invocation, or released for a continuation on its way, which may
            # wait in Lambda's event queue until it is too old to run.
            gone = self.lease is None and quiet_s > self.max_event_age_s
            return "failed" if gone else self.status
        attempts = self.attempts.get(self.lease.owner, 1)
        lapsed_s = (now - self.lease.expires_at).total_seconds()
        if attempts >= self.max_attempts or lapsed_s > self.retry_horizon_s:
            return "failed"
        return "retrying"
