"""Runs jobs on a stack: the local session (embedded AWS, sandbox, Lambda stand-in), the upload,
waiting for each job by its own counts, and the copy of output/ and jobs/ to the data dir."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from models import ObjectRef
from producer.job import job_id_for
from trawl.jobs import JobSummary, job_summary
from trawl.local.aws import EmbeddedAws
from trawl.local.invoke import LOCAL_RETRY_DELAYS_S
from trawl.local.runtime import LocalRuntime
from trawl.local.stack import Stack, create_local_stack
from trawl.sandbox import Faults, SandboxServer

STACK_NAME = "trawl"
# Locally, retries back off for seconds, not minutes, so a run with faults finishes quickly.
LOCAL_WORKER_ENV = {"RETRY_BASE_S": "1", "RETRY_MAX_S": "2", "READ_TIMEOUT_S": "3"}


class Session(Protocol):
    """A stack to run jobs on. With a runtime, trawl invokes the functions itself (a private
    local stack); without one the stack's own triggers do (`trawl up`, or AWS)."""

    @property
    def stack(self) -> Stack: ...

    @property
    def runtime(self) -> LocalRuntime | None: ...


@dataclass
class LocalSession:
    aws: EmbeddedAws
    sandbox: SandboxServer
    stack: Stack
    runtime: LocalRuntime
    upstreams: Upstreams = field(default_factory=lambda: Upstreams())


@dataclass
class AttachedSession:
    stack: Stack
    runtime: None = None


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


@contextmanager
def local_session(
    faults: Faults | None = None,
    parameters: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None,
    upstreams: Upstreams | None = None,
    retry_delays_s: tuple[float, ...] | None = None,
    workers: bool = True,
    deliver_twice: bool = False,
) -> Iterator[LocalSession]:
    """The embedded AWS, the sandbox upstream, the stack from template.yaml and the event loop.
    `parameters` are template parameters (as for `sam deploy`); `worker_env` overrides settings
    in every function's environment (as editing the function's configuration would);
    `upstreams` replaces the sandbox for TikAPI and/or Zyte API."""
    upstreams = upstreams or Upstreams()
    aws = EmbeddedAws().start()
    sandbox = SandboxServer(faults=faults).start()
    try:
        stack_parameters = {
            "TikApiBaseUrl": upstreams.tikapi.url if upstreams.tikapi else sandbox.tikapi_url,
            "ZyteApiUrl": upstreams.zyte.url if upstreams.zyte else sandbox.zyte_url,
        }
        keys = {api: u.key for api, u in (("tikapi", upstreams.tikapi), ("zyte", upstreams.zyte)) if u}
        stack = create_local_stack(aws.endpoint, STACK_NAME, stack_parameters | (parameters or {}), keys)
        runtime = LocalRuntime(
            stack,
            env_overrides=LOCAL_WORKER_ENV | (worker_env or {}),
            retry_delays_s=LOCAL_RETRY_DELAYS_S if retry_delays_s is None else retry_delays_s,
            deliver_twice=deliver_twice,
        ).start(workers=workers)
        try:
            yield LocalSession(aws, sandbox, stack, runtime, upstreams)
        finally:
            runtime.stop()
    finally:
        sandbox.stop()
        aws.stop()


def submit(session: Session, path: Path, platform: str, kind: str) -> str:
    """Upload a CSV to input/<platform>/<kind>/ and return its job id."""
    key = f"input/{platform}/{kind}/{path.name}"
    session.stack.endpoint.client("s3").upload_file(str(path), session.stack.bucket, key)
    if session.runtime is not None:
        session.runtime.deliver(session.runtime.upload_event(session.stack.bucket, key))
    return job_id_of(session.stack, key)


def job_id_of(stack: Stack, key: str) -> str:
    etag = stack.endpoint.client("s3").head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
    return job_id_for(ObjectRef(bucket=stack.bucket, key=key, etag=etag))


# job_id, items done, items enqueued so far, whether the producer is still enqueuing
ProgressFn = Callable[[str, int, int, bool], None]


def wait_for_jobs(
    session: Session, job_ids: list[str], on_progress: ProgressFn | None = None, timeout_s: float = 3600
) -> list[JobSummary]:
    """Until each job has settled (done or failed), by its own manifest and ledger counts: other
    jobs on the same stack do not hold it up. Their summaries, in order."""
    deadline = time.monotonic() + timeout_s
    stack = session.stack
    while True:
        found = {job_id: job_summary(stack, job_id) for job_id in job_ids}
        if on_progress:
            for job_id, summary in found.items():
                if summary is not None:
                    done = summary.enqueued - summary.in_flight
                    on_progress(job_id, done, summary.enqueued, summary.status != "enqueued")
        if all(s is not None and s.settled for s in found.values()):
            return [s for s in found.values() if s is not None]
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs {', '.join(job_ids)} did not finish within {timeout_s:.0f} s")
        time.sleep(0.2)


def message_body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def release(sqs: Any, url: str, handles: list[str]) -> None:
    """Make received messages visible again at once."""
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for i, h in enumerate(handles[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def copy_to_data_dir(stack: Stack, data_dir: Path, prefixes: tuple[str, ...] = ("output/", "jobs/")) -> int:
    """Copy the bucket's output/ and jobs/ trees so results outlive the embedded stack."""
    s3 = stack.endpoint.client("s3")
    keys = [
        obj["Key"]
        for prefix in prefixes
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if "/checkpoint/" not in obj["Key"] and not obj["Key"].endswith("/items.sqlite")
    ]

    def fetch(key: str) -> None:
        target = data_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(fetch, keys))
    return len(keys)
