"""Worker settings: one pydantic model, read once per container from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from models import Platform
from models.endpoints import check_upstream_url


class WorkerSettings(BaseModel):
    platform: Platform
    data_bucket: str
    queue_url: str
    # The CloudFormation stack the worker belongs to: a dimension of its metrics, so that two
    # stacks in one account publish apart.
    stack_name: str = "trawl"
    output_format: Literal["json", "csv"] = "json"
    tikapi_base_url: str = "https://api.tikapi.io"
    tikapi_key_parameter: str | None = None
    tikapi_key_secret: str | None = None
    zyte_api_url: str = "https://api.zyte.com/v1/extract"
    zyte_key_parameter: str | None = None
    zyte_key_secret: str | None = None
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=30.0, gt=0)
    # Backoff for retryable failures, applied as the message's visibility timeout.
    retry_base_s: int = Field(default=10, ge=0)
    retry_max_s: int = Field(default=900, ge=0, le=43_200)
    # No upstream call starts when less than this is left of the invocation.
    deadline_margin_ms: int = Field(default=3_000, ge=0)
    # The queue's maxReceiveCount: a retryable failure on the last receive means the DLQ next.
    max_receive_count: int = Field(default=5, ge=1)
    max_pages_per_message: int = Field(default=3, ge=1)
    max_videos_per_account: int = Field(default=100, ge=1)
    # The job ledger (DynamoDB) where each item's outcome is recorded, and how long item rows live.
    ledger_table: str | None = None
    ledger_ttl_days: int = Field(default=30, ge=1)
    # The API key's rate budget (workers/ratelimit.py): which key, and its requests per minute
    # (0: no budget, only the event source's MaximumConcurrency bounds the calls).
    rate_limit_key: Literal["tikapi", "zyte"] | None = None
    rate_limit_rpm: int = Field(default=0, ge=0)
    # Items of one batch fetched at once (a batch may hold up to 100).
    fetch_concurrency: int = Field(default=10, ge=1, le=100)
    # Set only by trawl's local Lambda stand-in: a deployed function never talks plain http.
    allow_loopback_http: bool = False

    @model_validator(mode="after")
    def _tls_only(self) -> WorkerSettings:
        self.tikapi_base_url = check_upstream_url(self.tikapi_base_url, self.allow_loopback_http)
        self.zyte_api_url = check_upstream_url(self.zyte_api_url, self.allow_loopback_http)
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        names = {name.upper(): name for name in cls.model_fields}
        values = {names[k]: v for k, v in env.items() if k in names and v != ""}
        return cls.model_validate(values)
