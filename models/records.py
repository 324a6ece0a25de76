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
ItemKey = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.=-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputRow(_Model):
    """One data row of an input CSV once its target column is found (row 1 is the header)."""

    row: int = Field(ge=2)
    target: str
    context: dict[str, str] = Field(default_factory=dict)


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
    target: str = Field(min_length=1, max_length=2048)
    source: Source
    context: dict[str, str] = Field(default_factory=dict)
    cursor: str | None = Field(default=None, pattern=r"^[0-9]+$")
    page: int = Field(default=0, ge=0)
    fetched: int = Field(default=0, ge=0)
    sec_uid: str | None = None


class AccountData(_Model):
    id: str
    unique_id: str
    sec_uid: str
    nickname: str
    verified: bool
    private: bool
    followers: int
    following: int
    likes: int
    videos: int


class VideoData(_Model):
    id: str
    author: str
    description: str
    created_at: dt.datetime
    plays: int
    likes: int
    comments: int
    shares: int


class ProductData(_Model):
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


class JobManifest(BaseModel):
    """What the producer did with one input file. rows_read = enqueued + duplicates + rejected."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    input: ObjectRef
    platform: str | None
    kind: str | None
    job_date: dt.date
    created_at: dt.datetime
    updated_at: dt.datetime
    status: Literal["running", "enqueued", "failed"] = "running"
    message: str | None = None
    # A failure that was not the file's fault (an AWS error, say): the next delivery of the same
    # upload starts the job again instead of finding it done.
    retryable: bool = False
    target_column: str | None = None
    rows_read: int = 0
    enqueued: int = 0
    duplicates: int = 0
    rejected: int = 0
    invocations: int = 0
    checkpoint: dict[str, Any] | None = None

    def counts_add_up(self) -> bool:
        return self.rows_read == self.enqueued + self.duplicates + self.rejected
