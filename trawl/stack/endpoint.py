"""Where AWS calls go: the embedded server, a user's endpoint, or real AWS, and boto3 clients for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"


LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Endpoint:
    """Where AWS calls go: the embedded server, a user's endpoint, or real AWS (url None)."""

    url: str | None
    region: str = REGION
    local: bool = True
    # Lambda's Invoke API, when the functions run in trawl's local stand-in rather than in moto.
    lambda_url: str | None = None

    def client(self, service: str) -> Any:
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=64)
        kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
        if service == "lambda" and self.lambda_url:
            kwargs["endpoint_url"] = self.lambda_url
        elif self.url:
            kwargs["endpoint_url"] = self.url
        if self.local:
            kwargs |= LOCAL_CREDENTIALS
        return boto3.client(service, **kwargs)  # type: ignore[call-overload]

    def lambda_env(self) -> dict[str, str]:
        """What the Lambda runtime would put in a function's environment, for this endpoint."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.url:
            env["AWS_ENDPOINT_URL"] = self.url
        if self.local:
            env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
            # The sandbox and test stand-ins listen on plain http on loopback; deployed
            # functions never get this, so they talk TLS only.
            env["ALLOW_LOOPBACK_HTTP"] = "true"
        return env
