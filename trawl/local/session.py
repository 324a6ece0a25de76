"""A private local stack for one command or test: the embedded AWS, the sandbox upstreams, the
stack from template.yaml and the Lambda stand-in, started together and stopped in order."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from trawl.local.artifacts import Artifact
from trawl.local.aws import EmbeddedAws
from trawl.local.create import create_local_stack
from trawl.local.invoke import LOCAL_RETRY_DELAYS_S
from trawl.local.runtime import LocalRuntime
from trawl.sandbox import Faults, SandboxServer
from trawl.stack.describe import DEFAULT_STACK_NAME, Stack
from trawl.stack.running import UpState

# Locally, retries back off for seconds, not minutes, so a run with faults finishes quickly.
LOCAL_WORKER_ENV = {"RETRY_BASE_S": "1", "RETRY_MAX_S": "2", "READ_TIMEOUT_S": "3"}


@dataclass
class LocalSession:
    aws: EmbeddedAws
    sandbox: SandboxServer
    stack: Stack
    runtime: LocalRuntime
    upstreams: Upstreams = field(default_factory=lambda: Upstreams())


@dataclass(frozen=True)
class Upstream:
    """A real upstream (or a stand-in for one) instead of the sandbox: its URL as the template
    parameter means it, and its API key, which goes only into the embedded SSM."""

    url: str
    key: str = field(repr=False)


@dataclass(frozen=True)
class Upstreams:
    tikapi: Upstream | None = None
    zyte: Upstream | None = None

    def describe(self, sandbox_url: str) -> list[tuple[str, str]]:
        """(API, where it is) for the start-up banner; never the key."""
        return [
            ("TikAPI", self.tikapi.url if self.tikapi else f"sandbox {sandbox_url}"),
            ("Zyte API", self.zyte.url if self.zyte else f"sandbox {sandbox_url}/v1/extract"),
        ]


def up_state(session: LocalSession) -> UpState:
    """What `trawl up` records of its stack, so other commands can find it."""
    return UpState(
        session.aws.endpoint.url or "",
        session.sandbox.url,
        session.stack.name,
        os.getpid(),
        session.runtime.invoke_server.url,
    )


@contextmanager
def local_session(
    faults: Faults | None = None,
    parameters: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
    upstreams: Upstreams | None = None,
    retry_delays_s: tuple[float, ...] | None = None,
    workers: bool = True,
    deliver_twice: bool = False,
    artifacts: Mapping[str, Artifact] | None = None,
) -> Iterator[LocalSession]:
    """The embedded AWS, the sandbox upstream, the stack from template.yaml and the event loop.
    `parameters` are template parameters (as for `sam deploy`); `worker_env` overrides settings
    in every function's environment (as editing the function's configuration would);
    `upstreams` replaces the sandbox for TikAPI and/or Zyte API; `artifacts` (logical id ->
    artifact) are run instead of the ones staged from this virtualenv."""
    upstreams = upstreams or Upstreams()
    aws = EmbeddedAws().start()
    sandbox = SandboxServer(faults=faults).start()
    try:
        stack_parameters = {
            "TikApiBaseUrl": upstreams.tikapi.url if upstreams.tikapi else sandbox.tikapi_url,
            "ZyteApiUrl": upstreams.zyte.url if upstreams.zyte else sandbox.zyte_url,
        }
        keys = {api: u.key for api, u in (("tikapi", upstreams.tikapi), ("zyte", upstreams.zyte)) if u}
        stack = create_local_stack(
            aws.endpoint, DEFAULT_STACK_NAME, stack_parameters | (parameters or {}), keys
        )
        runtime = LocalRuntime(
            stack,
            env_overrides=LOCAL_WORKER_ENV | (worker_env or {}),
            retry_delays_s=LOCAL_RETRY_DELAYS_S if retry_delays_s is None else retry_delays_s,
            deliver_twice=deliver_twice,
            artifacts=artifacts,
        ).start(workers=workers)
        try:
            yield LocalSession(aws, sandbox, stack, runtime, upstreams)
        finally:
            runtime.stop()
    finally:
        sandbox.stop()
        aws.stop()
