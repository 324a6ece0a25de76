"""Runs jobs on a stack and reports them: upload -> producer -> workers -> records, then the
summary users see (docs/contract.md, "Commands") and the copy of output/ and jobs/ to the data dir."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from models import JobManifest, ObjectRef
from producer.job import job_id_for
from producer.store import JobStore
from trawl.local.aws import EmbeddedAws
from trawl.local.invoke import LOCAL_RETRY_DELAYS_S
from trawl.local.runtime import LocalRuntime
from trawl.local.stack import Stack, create_local_stack, queue_depth
from trawl.sandbox import Faults, SandboxServer

STACK_NAME = "trawl"
# Locally, retries back off for seconds, not minutes, so a run with faults finishes quickly.
LOCAL_WORKER_ENV = {"RETRY_BASE_S": "1", "RETRY_MAX_S": "2", "READ_TIMEOUT_S": "3"}


@dataclass
class JobSummary:
    """What users see of a job (docs/contract.md, "Commands"): `run`, `demo` and `status` print it."""

    job_id: str
    input_key: str
    platform: str | None
    kind: str | None
    status: str  # the producer's: running, enqueued, failed
    message: str | None
    rows: int
    enqueued: int
    duplicates: int
    rejected: int
    written_ok: int
    written_permanent: int
    dead_lettered: int
    in_flight: int
    output_prefix: str | None
    data_dir: str | None

    @classmethod
    def of(
        cls,
        bucket: str,
        m: JobManifest,
        statuses: Counter[str],
        dead_lettered: int,
        in_flight: int,
        data_dir: Path | None,
    ) -> JobSummary:
        prefix = (
            f"s3://{bucket}/output/platform={m.platform}/kind={m.kind}/dt={m.job_date}/"
            if m.platform
            else None
        )
        return cls(
            job_id=m.job_id,
            input_key=m.input.key,
            platform=m.platform,
            kind=m.kind,
            status=m.producer_state(dt.datetime.now(dt.UTC)),
            message=m.message,
            rows=m.rows_read,
            enqueued=m.enqueued,
            duplicates=m.duplicates,
            rejected=m.rejected,
            written_ok=statuses["ok"],
            written_permanent=sum(n for s, n in statuses.items() if s != "ok"),
            dead_lettered=dead_lettered,
            in_flight=in_flight,
            output_prefix=prefix,
            data_dir=str(data_dir) if data_dir else None,
        )

    @property
    def state(self) -> str:
        """done, failed (the producer gave up, or items are in the DLQ and nothing is left),
        retrying (Lambda retries a failed producer invocation) or running."""
        if self.status == "failed" or (
            self.status == "enqueued" and self.in_flight == 0 and self.dead_lettered
        ):
            return "failed"
        if self.status == "retrying":
            return "retrying"
        return "done" if self.status == "enqueued" and self.in_flight == 0 else "running"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"state": self.state}

    @property
    def succeeded(self) -> bool:
        return self.state == "done"


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
    pollers: bool = True,
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
        ).start(pollers=pollers)
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


def load_manifest(stack: Stack, job_id: str) -> JobManifest | None:
    """The job's manifest, read the way the producer reads it."""
    return JobStore(stack.endpoint.client("s3"), stack.bucket).load_manifest(job_id)


def job_id_of(stack: Stack, key: str) -> str:
    etag = stack.endpoint.client("s3").head_object(Bucket=stack.bucket, Key=key)["ETag"].strip('"')
    return job_id_for(ObjectRef(bucket=stack.bucket, key=key, etag=etag))


# job_id, items done, items enqueued so far, whether the producer is still enqueuing
ProgressFn = Callable[[str, int, int, bool], None]


def wait_for_jobs(
    session: Session, job_ids: list[str], on_progress: ProgressFn | None = None, timeout_s: float = 3600
) -> None:
    """Until every job's producer is done and nothing is left on the work queues."""
    deadline = time.monotonic() + timeout_s
    stack, runtime = session.stack, session.runtime
    sqs = stack.endpoint.client("sqs")
    work_queues = [stack.queue_url(p) for p in stack.platforms]
    while time.monotonic() < deadline:
        manifests = {job_id: load_manifest(stack, job_id) for job_id in job_ids}
        now = dt.datetime.now(dt.UTC)
        produced = all(
            m is not None and m.producer_state(now) in ("enqueued", "failed") for m in manifests.values()
        )
        if on_progress:
            dlq = sum(queue_depth(sqs, stack.dlq_url(p)) for p in stack.platforms)
            waiting = sum(queue_depth(sqs, q) for q in work_queues)
            for job_id, m in manifests.items():
                total = m.enqueued if m else 0
                done = runtime.progress.processed[job_id] if runtime else max(0, total - waiting)
                on_progress(job_id, min(total, done + dlq), total, m is None or m.status != "enqueued")
        idle = runtime.idle() if runtime else all(queue_depth(sqs, q) == 0 for q in work_queues)
        if produced and idle:
            return
        time.sleep(0.2)
    raise TimeoutError(f"jobs {', '.join(job_ids)} did not finish within {timeout_s:.0f} s")


def dead_letters(stack: Stack, platform: str) -> list[dict[str, Any]]:
    """The body of every message in the platform's DLQ; all are visible again on return."""
    sqs = stack.endpoint.client("sqs")
    url = stack.dlq_url(platform)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        )
        fresh = [m for m in messages if m["MessageId"] not in found]
        if not fresh:
            break
        for m in fresh:
            found[m["MessageId"]] = (m["ReceiptHandle"], message_body(m["Body"]))
    release(sqs, url, [handle for handle, _ in found.values()])
    return [body for _, body in found.values()]


def dead_letters_by_job(stack: Stack, platform: str) -> Counter[str]:
    return Counter(str(body.get("job_id", "?")) for body in dead_letters(stack, platform))


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
        if "/checkpoint/" not in obj["Key"]
    ]

    def fetch(key: str) -> None:
        target = data_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(fetch, keys))
    return len(keys)


def record_statuses(data_dir: Path, manifest: JobManifest) -> Counter[str]:
    """Status of every record of one job, read from the data dir copy."""
    folder = data_dir / f"output/platform={manifest.platform}/kind={manifest.kind}/dt={manifest.job_date}"
    return Counter(
        str(record_outline(path.read_text(encoding="utf-8"), path.suffix == ".csv")["status"])
        for path in folder.glob(f"{manifest.job_id}-*")
    )


def record_outline(body: str, csv_format: bool) -> dict[str, Any]:
    """A record's status and source row, from its JSON line or its one-row CSV."""
    if csv_format:
        row = next(csv.DictReader(io.StringIO(body)))
        return {"status": row["status"], "source": {"row": int(row["source_row"])}}
    record: dict[str, Any] = json.loads(body)
    return record


def summarise(stack: Stack, job_id: str, data_dir: Path, dead: Counter[str]) -> JobSummary:
    manifest = load_manifest(stack, job_id)
    if manifest is None:
        raise RuntimeError(f"job {job_id} has no manifest: the producer never ran for it")
    statuses = record_statuses(data_dir, manifest) if manifest.platform else Counter()
    return JobSummary.of(stack.bucket, manifest, statuses, dead[job_id], 0, data_dir)
