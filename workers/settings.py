"""Worker settings: one pydantic model, read once per container from the environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from models import Platform


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WorkerSettings(BaseModel):
    platform: Platform
    data_bucket: str
    queue_url: str
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

    @field_validator("tikapi_base_url", "zyte_api_url")
    @classmethod
    def _tls_only(cls, url: str) -> str:
        parts = urlsplit(url)
        # Plain http is allowed only to this machine (the local sandbox); anything else is TLS.
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname or "")):
            raise ValueError(f"upstream URL must be https (http only for 127.0.0.1/localhost): {url}")
        return url.rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WorkerSettings:
        names = {name.upper(): name for name in cls.model_fields}
        values = {names[k]: v for k, v in env.items() if k in names and v != ""}
        return cls.model_validate(values)
