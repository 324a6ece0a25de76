"""Shared helpers for the benchmarks in bench/: quiet handler logs, input CSVs, Lambda-shaped SQS
events, the hand-run extraction script trawl replaced (the baseline), and small table printing."""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from models import Source, WorkItem
from trawl.local.pipeline import LOCAL_WORKER_ENV, LocalSession
from trawl.local.stack import SANDBOX_KEYS, FunctionInfo

JOB_DATE = "2026-11-30"


def quiet_handlers() -> None:
    """As `trawl run` does without --verbose: no per-batch log lines or EMF metrics on stdout,
    so the benchmark prints only its table. Must run before the handler modules are imported."""
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    for name in ("trawl", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


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


def lambda_sqs_event(messages: Sequence[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source delivers for received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


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


def verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"
