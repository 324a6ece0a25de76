"""The embedded AWS of the local default: a moto server on 127.0.0.1 (free port), and boto3
clients that talk to it (or to any AWS-compatible endpoint the user names)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from trawl.local.moto_clock import patch_moto_sqs_clock

REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Endpoint:
    """Where AWS calls go: the embedded server, a user's endpoint, or real AWS (url None)."""

    url: str | None
    region: str = REGION
    local: bool = True

    def client(self, service: str) -> Any:
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=64)
        kwargs: dict[str, Any] = {"region_name": self.region, "config": config}
        if self.url:
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
        return env


class EmbeddedAws:
    """moto's ThreadedMotoServer, started on a free loopback port."""

    def __init__(self, port: int | None = None) -> None:
        from moto.server import ThreadedMotoServer

        patch_moto_sqs_clock()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = Endpoint(url=f"http://127.0.0.1:{self.port}")

    def start(self) -> EmbeddedAws:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def detach_moto_lambda_dispatch(self) -> None:
        """moto runs a queue's event source mappings itself on every SendMessage, in Docker
        (absent here), and then deletes the messages. In the local default the LocalRuntime is
        the Lambda service, so moto's own dispatch is detached after the stack is created; the
        mappings stay readable through the Lambda API, which is where the runtime reads them."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        for queue in sqs_backends[DEFAULT_ACCOUNT_ID][self.endpoint.region].queues.values():
            queue.lambda_event_source_mappings.clear()
