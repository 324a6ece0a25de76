"""Shared helpers for the benchmarks in bench/: quiet handler logs, input CSVs, Lambda-shaped SQS
events, the hand-run extraction script trawl replaced (the baseline), jobs seeded straight into
a stack, and small table printing."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import statistics
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from models import JobManifest, ObjectRef, Source, WorkItem
from models.ledger import item_key as ledger_item_key
from producer.ledger import JobRows
from producer.store import JobStore
from trawl.local.create import SANDBOX_KEYS
from trawl.local.runtime import set_handler_log_level
from trawl.local.session import LOCAL_WORKER_ENV, LocalSession
from trawl.stack.describe import FunctionInfo, Stack
from trawl.stack.jobs import job_summary

JOB_DATE = "2026-11-30"


def quiet_handlers(level: int = logging.ERROR) -> None:
    """As `trawl run` does without --verbose: no per-batch log lines or EMF metrics on stdout,
    so the benchmark prints only its table."""
    set_handler_log_level(level)
    logging.getLogger("urllib3").setLevel(level)


def usernames(prefix: str, n: int) -> list[str]:
    """Existing, public sandbox accounts (no ghost*/missing*/private* names)."""
    return [f"{prefix}_{i:05d}" for i in range(n)]


def write_accounts_csv(path: Path, names: Iterable[str]) -> Path:
    lines = ["username,team"] + [f"{name},team-{i % 7}" for i, name in enumerate(names)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_usernames(path: Path) -> list[str]:
    """How a hand-run script reads the CSV: first column, header skipped."""
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return [row.split(",", 1)[0].strip().lstrip("@").lower() for row in rows if row.strip()]


def work_item(job_id: str, name: str, row: int) -> WorkItem:
    return WorkItem(
        job_id=job_id,
        job_date=JOB_DATE,
        platform="tiktok",
        kind="account",
        item_key=name,
        target=name,
        source=Source(bucket="bench", key="input/tiktok/account/bench.csv", row=row),
    )


def tiktok_worker(session: LocalSession) -> FunctionInfo:
    return session.stack.functions[session.stack.outputs["TikTokWorkerFunctionName"]]


def worker_env(session: LocalSession) -> dict[str, str]:
    """The TikTok worker's environment exactly as the local runtime builds it."""
    function = tiktok_worker(session)
    return session.stack.function_env(function) | LOCAL_WORKER_ENV


def send_and_receive(sqs: Any, queue_url: str, items: Sequence[WorkItem]) -> list[dict[str, Any]]:
    """Send the items (batches of 10) and receive exactly those messages back, as one batch."""
    sent: set[str] = set()
    for start in range(0, len(items), 10):
        entries = [
            {"Id": str(i), "MessageBody": item.model_dump_json()}
            for i, item in enumerate(items[start : start + 10])
        ]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        sent |= {entry["MessageId"] for entry in answer["Successful"]}
    received: list[dict[str, Any]] = []
    while len(received) < len(sent):
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            if message["MessageId"] in sent:
                received.append(message)
            else:  # left over from an earlier measurement: not part of this batch
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return received


@dataclass
class HandRunScript:
    """The baseline: what the team ran by hand before trawl. One item at a time: GET the
    profile with a keep-alive HTTP client, then PUT the record to S3, then the next item."""

    tikapi_url: str
    s3: Any
    bucket: str

    def run(self, names: Iterable[str], prefix: str) -> int:
        headers = {"X-API-KEY": SANDBOX_KEYS["tikapi"], "Accept": "application/json"}
        written = 0
        with httpx.Client(base_url=self.tikapi_url, headers=headers, timeout=30) as http:
            for name in names:
                response = http.get("/public/check", params={"username": name})
                response.raise_for_status()
                record = {"username": name, "status": "ok", "data": response.json()["userInfo"]}
                body = (json.dumps(record) + "\n").encode()
                self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/{name}.json", Body=body)
                written += 1
        return written


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table: first column left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def most_in_window(times: Iterable[float], window_s: float = 60.0) -> int:
    """The most of `times` (seconds) in any half-open window of `window_s`."""
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def seed_job(stack: Stack, items: int, platform: str = "tiktok", objects: bool = False) -> str:
    """A finished job of `items` tiktok/account items written into the stack directly, without
    running it: its manifest, its ledger row and one ledger row per item (settled ok), whose
    counts the ledger function then sums as it would a real job's; with `objects`, also one output
    record per item, where a worker would have written it. Returns once the ledger's counts show
    every item. Its id."""
    job_id = hashlib.sha256(f"seeded-{items}-{time.time_ns()}".encode()).hexdigest()[:16]
    now = dt.datetime.now(dt.UTC)
    manifest = JobManifest(
        job_id=job_id,
        input=ObjectRef(bucket=stack.bucket, key=f"input/{platform}/account/seeded-{items}.csv", etag="e"),
        platform=platform,
        kind="account",
        job_date=now.date(),
        created_at=now,
        updated_at=now,
        status="enqueued",
        rows_read=items,
        enqueued=items,
    )
    s3, dynamodb = stack.endpoint.client("s3"), stack.endpoint.client("dynamodb")
    JobStore(s3, stack.bucket).write_manifest(manifest, None)
    JobRows(dynamodb, stack.ledger_table).write(manifest)
    names = [f"seeded{n:06d}" for n in range(items)]
    rows = [
        {
            **{k: {"S": v} for k, v in ledger_item_key(job_id, name).items()},
            "outcome": {"S": "ok"},
            "last_delivery": {"S": f"seed:{n}"},
            "receives": {"N": "1"},
            "records": {"N": "1"},
            "info": {"M": {"updated_at": {"S": now.isoformat()}}},
        }
        for n, name in enumerate(names)
    ]

    def put_rows(start: int) -> None:
        chunk = [{"PutRequest": {"Item": row}} for row in rows[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={stack.ledger_table: chunk})

    def put_record(n: int) -> None:
        record = {"job_id": job_id, "item_key": names[n], "status": "ok", "source": {"row": n + 2}}
        key = f"output/platform={platform}/kind=account/dt={manifest.job_date}/{job_id}-{names[n]}.json"
        s3.put_object(Bucket=stack.bucket, Key=key, Body=(json.dumps(record) + "\n").encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put_rows, range(0, items, 25)))
        if objects:
            list(pool.map(put_record, range(items)))
    deadline = time.monotonic() + 120 + items / 100
    while (found := job_summary(stack, job_id)) is None or found.written_ok < items:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the ledger counted {found and found.written_ok} of {items} seeded items")
        time.sleep(0.5)
    return job_id


@contextmanager
def count_requests() -> Iterator[list[str]]:
    """Every AWS request any client made in the block (clients created in it), as "service.Operation"."""
    import boto3

    made: list[str] = []

    def sent(request: Any, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        made.append(f"{service}.{operation}")

    events = boto3._get_default_session().events
    events.register("before-send", sent)
    try:
        yield made
    finally:
        events.unregister("before-send", sent)


class LocalContext:
    """Lambda's context object, for calling a handler in this process (benchmarks, and tests of
    the handlers themselves): a retried asynchronous invocation keeps its request id, as on
    Lambda."""

    def __init__(self, function: FunctionInfo, request_id: str | None = None) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function.name}"
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + function.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
