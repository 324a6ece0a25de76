"""The embedded AWS of the local default: a moto server on 127.0.0.1 (free port), and boto3
clients that talk to it (or to any AWS-compatible endpoint the user names)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any

import boto3
from botocore.config import Config

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
    """moto's server on a free loopback port, in a child process (trawl.local.motoserver)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = Endpoint(url=f"http://127.0.0.1:{self.port}")
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> EmbeddedAws:
        # Its errors go to a file, not a pipe: nobody reads a pipe while the server runs.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self._process = subprocess.Popen(
            [sys.executable, "-m", "trawl.local.motoserver", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"the embedded AWS server exited at start:\n{err[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"the embedded AWS server did not listen on 127.0.0.1:{self.port} in {timeout_s:.0f} s"
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._log is not None:
            self._log.close()
