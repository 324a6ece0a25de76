"""Producer benchmark (`python -m bench.producer`): trawl's fan-out against a bare
SendMessageBatch loop (the ceiling) and a naive SendMessage-per-row loop, side by side against
one SQS endpoint with the same thread count, plus the producer's peak RSS at 100k and 1M rows.

The input CSVs live in the embedded moto S3; SQS is bench.sqs_stub (constant-time answers after
a fixed round trip, --sqs-latency-ms, 2 ms by default), because moto's SQS slows with queue depth
and would measure moto instead. All three loops talk to the same stub. Every measurement
runs in a fresh subprocess, so peak RSS and warm-up are comparable."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from models import ObjectRef, Source, WorkItem
from models.runtime import client_factory

BUCKET = "trawl-bench"
# What one SQS request costs in time beyond this machine: the round trip to the regional endpoint
# (about 2.5 ms measured by ping inside a region) and SQS storing the message redundantly before it
# answers. 2 ms is on the low side of that: a loop sending one row per request is paid for per row.
SQS_LATENCY_MS = 2.0
ACCOUNT_QUEUE = "/000000000000/trawl-bench-tiktok"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def _client(service: str, endpoint: str) -> Any:
    # The same factory the handlers use, so client settings (pool size, retries) match.
    return client_factory(CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint})(service)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- measurements (child processes)
def measure_producer(s3_url: str, sqs_url: str, key: str, threads: int) -> dict[str, Any]:
    from producer.job import JobRequest, ProducerDeps, run_job
    from producer.settings import ProducerSettings
    from producer.store import JobStore

    s3 = _client("s3", s3_url)
    etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"].strip('"')
    continuations: list[dict[str, Any]] = []

    class _Continuer:
        def continue_job(self, payload: dict[str, Any]) -> None:
            continuations.append(payload)

    with tempfile.TemporaryDirectory() as tmp:
        settings = ProducerSettings(
            data_bucket=BUCKET,
            queue_urls={"tiktok": sqs_url + ACCOUNT_QUEUE},
            send_threads=threads,
            tmp_dir=tmp,
        )
        deps = ProducerDeps(settings, JobStore(s3, BUCKET), _client("sqs", sqs_url), _Continuer())
        request = JobRequest(ObjectRef(bucket=BUCKET, key=key, etag=etag), dt.datetime.now(dt.UTC), "bench")
        start = time.perf_counter()
        manifest = run_job(request, deps, _invocation_clock())
        while continuations:  # only if one invocation was not enough
            continuations.pop()
            manifest = run_job(
                JobRequest(request.source, request.event_time, "bench-continued", True),
                deps,
                _invocation_clock(),
            )
        seconds = time.perf_counter() - start
    assert manifest is not None and manifest.status == "enqueued", manifest
    return {
        "rows": manifest.rows_read,
        "enqueued": manifest.enqueued,
        "invocations": manifest.invocations,
        "seconds": seconds,
        "rows_per_s": manifest.rows_read / seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _invocation_clock() -> Callable[[], int]:
    """remaining_ms of one Lambda invocation at the template's 900 s timeout."""
    deadline = time.monotonic() + 900
    return lambda: int((deadline - time.monotonic()) * 1000)


def _bodies(rows: int) -> list[str]:
    """Message bodies shaped like the producer's (same fields, same sizes)."""
    source = Source(bucket=BUCKET, key="input/tiktok/account/bench.csv", row=2)
    item = WorkItem(
        job_id="0123456789abcdef",
        job_date=dt.date.today(),
        platform="tiktok",
        kind="account",
        item_key="user0000000",
        target="user0000000",
        source=source,
        context={"crm_id": "crm-0000000", "segment": "bench"},
    )
    template = item.model_dump_json()
    return [template.replace("0000000", f"{n:07d}") for n in range(rows)]


def measure_ceiling(sqs_url: str, rows: int, threads: int) -> dict[str, Any]:
    sqs, url = _client("sqs", sqs_url), sqs_url + ACCOUNT_QUEUE
    bodies = _bodies(rows)
    batches = [
        [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[n : n + 10])]
        for n in range(0, rows, 10)
    ]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for response in pool.map(
            lambda entries: sqs.send_message_batch(QueueUrl=url, Entries=entries), batches
        ):
            assert not response.get("Failed")
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def measure_naive(sqs_url: str, rows: int) -> dict[str, Any]:
    sqs, url = _client("sqs", sqs_url), sqs_url + ACCOUNT_QUEUE
    bodies = _bodies(rows)
    start = time.perf_counter()
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


# ---------------------------------------------------------------- orchestration (parent process)
def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.producer", "--child", *args], check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("username,crm_id,segment\r\n")
        for n in range(rows):
            handle.write(f"user{n:07d},crm-{n:07d},bench\r\n")


def _start_stub(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    from trawl.local.aws import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.sqs_stub", str(port), str(latency_ms)])
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    process.terminate()
    raise RuntimeError("the SQS stub did not start")


def _stub_count(sqs_url: str) -> int:
    request = urllib.request.Request(sqs_url, data=b"{}", headers={"X-Amz-Target": "AmazonSQS.TrawlCount"})
    with urllib.request.urlopen(request) as response:
        count: int = json.loads(response.read())["Count"]
        return count


def run(args: argparse.Namespace) -> None:
    from trawl.local.aws import EmbeddedAws

    aws = EmbeddedAws().start()
    stub, sqs_url = _start_stub(args.sqs_latency_ms)
    try:
        s3_url = aws.endpoint.url or ""
        s3 = _client("s3", s3_url)
        s3.create_bucket(Bucket=BUCKET)
        keys = {}
        with tempfile.TemporaryDirectory() as tmp:
            for rows in (args.small, args.large):
                path = Path(tmp) / f"bench-{rows}.csv"
                _write_csv(path, rows)
                keys[rows] = f"input/tiktok/account/bench-{rows}.csv"
                s3.upload_file(str(path), BUCKET, keys[rows])
        threads = str(args.threads)
        print(f"SQS endpoint: bench.sqs_stub at {sqs_url} (constant-time SQS JSON protocol stub,"
              f" {args.sqs_latency_ms:g} ms round trip per request); S3: embedded moto at {s3_url};"
              f" {args.threads} send threads")  # fmt: skip
        ceiling = _child("ceiling", sqs_url, str(args.ceiling_rows), threads)
        naive = _child("naive", sqs_url, str(args.naive_rows))
        small = _child("producer", s3_url, sqs_url, keys[args.small], threads)
        before = _stub_count(sqs_url)
        large = _child("producer", s3_url, sqs_url, keys[args.large], threads)
        arrived = _stub_count(sqs_url) - before
    finally:
        stub.terminate()
        aws.stop()
    _report(ceiling, naive, small, large, arrived)


def _report(
    ceiling: dict[str, Any], naive: dict[str, Any], small: dict[str, Any], large: dict[str, Any], arrived: int
) -> None:
    rate = large["rows_per_s"]
    print(f"{'measurement':<46}{'rows':>10}{'seconds':>10}{'rows/s':>10}")
    for name, m in [
        ("bare SendMessageBatch loop (ceiling)", ceiling),
        ("naive SendMessage per row", naive),
        ("trawl producer run_job", small),
        ("trawl producer run_job", large),
    ]:
        print(f"{name:<46}{m['rows']:>10,}{m['seconds']:>10.1f}{m['rows_per_s']:>10,.0f}")
    ratio, speedup = rate / ceiling["rows_per_s"], rate / naive["rows_per_s"]
    growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
    rss_ok = "ok" if abs(growth) <= 0.10 else "MISSED"
    print(f"producer / ceiling: {ratio:.2f} (target >= 0.70) {'ok' if ratio >= 0.7 else 'MISSED'}")
    print(f"producer / naive:   {speedup:.1f}x (target >= 10x) {'ok' if speedup >= 10 else 'MISSED'}")
    print(
        f"peak RSS: {small['peak_rss_mb']:.1f} MB at {small['rows']:,} rows, {large['peak_rss_mb']:.1f} MB at"
        f" {large['rows']:,} rows: {growth:+.1%} (target within 10%) {rss_ok}"
    )
    print(
        f"{large['rows']:,} rows: {large['invocations']} invocation(s), {large['seconds']:.0f} s of a 900 s"
        f" timeout; {large['enqueued']:,} enqueued, {arrived:,} arrived at the endpoint"
    )


def _child_main(argv: list[str]) -> None:
    what, *rest = argv
    if what == "producer":
        result = measure_producer(rest[0], rest[1], rest[2], int(rest[3]))
    elif what == "ceiling":
        result = measure_ceiling(rest[0], int(rest[1]), int(rest[2]))
    else:
        result = measure_naive(rest[0], int(rest[1]))
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--ceiling-rows", type=int, default=200_000)
    parser.add_argument("--naive-rows", type=int, default=5_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--sqs-latency-ms",
        type=float,
        default=SQS_LATENCY_MS,
        help="round trip the SQS stub adds to every request (0: answer at once)",
    )
    run(parser.parse_args())


if __name__ == "__main__":
    main()
