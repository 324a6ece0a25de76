"""End-to-end benchmark (`python -m bench.e2e`): 10,000 TikTok accounts through the whole local
pipeline (upload, producer, queue, worker handlers, S3) against, in the same run and on the
same embedded AWS and sandbox:
  (a) the hand-run script trawl replaced: the same CSV, one item at a time (on a sample);
  (b) the embedded queue's own ceiling: a bare send -> receive -> delete loop with the same
      shape (batches of 10, as many consumer threads as the TikTok MaximumConcurrency).
Targets: trawl >= 10x the script, and >= 0.5 of the queue's ceiling. CPU of this process, of the
worker processes and of the moto child process is shown per phase, with the CPU milliseconds each
item cost in all: where the time goes, and what bounds each rate on this machine. The pipeline's
items finished per second over its run are drawn in docs/img/e2e-throughput.svg (--chart)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import chart
from bench.common import (
    HandRunScript,
    quiet_handlers,
    read_usernames,
    table,
    tiktok_worker,
    usernames,
    verdict,
    work_item,
    write_accounts_csv,
)
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Faults
from trawl.stack.describe import queue_depth
from trawl.stack.submit import submit

TARGET_OVER_SCRIPT = 10.0
TARGET_OF_CEILING = 0.5
# The ceiling loop keeps at most this many messages on the queue, as the local runtime does
# (LOCAL_ROWS_PER_INVOCATION + LOW_WATER): moto's SQS slows as a queue gets deeper.
CEILING_MAX_OUTSTANDING = 300
# The pipeline's progress is sampled this often for the chart, and its rate drawn over a window
# this long (a worker deletes its batch of 10 at once: per half second the count comes in steps).
SAMPLE_EVERY_S = 0.5
RATE_WINDOW_S = 2.0
CHART_PATH = Path(__file__).resolve().parent.parent / "docs" / "img" / "e2e-throughput.svg"


@dataclass
class Phase:
    name: str
    items: int
    seconds: float
    bench_cpu_s: float
    worker_cpu_s: float
    moto_cpu_s: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    @property
    def cpu_s(self) -> float:
        return self.bench_cpu_s + self.worker_cpu_s + self.moto_cpu_s


def _children(module: str) -> list[int]:
    """This process's children whose command line holds `module`."""
    pids = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        try:
            listed = children.read_text().split()
        except FileNotFoundError:  # the thread ended since the listing
            continue
        for pid in listed:
            with contextlib.suppress(OSError):
                if module.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
    return pids


def _cpu_s(pids: list[int]) -> float:
    """utime + stime of the processes (those that ended since are not counted)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _measure(name: str, items: int, fn: Any, *args: Any) -> Phase:
    moto = _children("trawl.local.motoserver")
    workers0 = _cpu_s(_children("bootstrap.py"))
    cpu0, moto0, start = time.process_time(), _cpu_s(moto), time.perf_counter()
    fn(*args)
    seconds = time.perf_counter() - start
    bench_cpu, moto_cpu = time.process_time() - cpu0, _cpu_s(moto) - moto0
    workers_cpu = _cpu_s(_children("bootstrap.py")) - workers0
    print(f"... {name}: {items / seconds:.0f} items/s", file=sys.stderr, flush=True)
    return Phase(name, items, seconds, bench_cpu, workers_cpu, moto_cpu)


def _run_trawl(session: LocalSession, csv_path: Path, n: int, samples: list[tuple[float, int]]) -> None:
    """Until n messages of the job are processed (deleted after their records were written), with
    (seconds since the upload began, messages processed) appended to `samples` every half second.
    Not wait_for_jobs: a message stuck in flight would make it wait out the queue's visibility
    timeout, which measures moto's bug (see _check_trawl), not throughput."""
    start = time.perf_counter()
    samples.append((0.0, 0))
    job_id = submit(session, csv_path, "tiktok", "account")
    deadline = time.monotonic() + 900
    while (done := session.runtime.progress.processed[job_id]) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done} of {n} items after 900 s")
        if (now := time.perf_counter() - start) - samples[-1][0] >= SAMPLE_EVERY_S:
            samples.append((now, done))
        time.sleep(0.05)
    samples.append((time.perf_counter() - start, session.runtime.progress.processed[job_id]))


def throughput(
    samples: list[tuple[float, int]], window_s: float = RATE_WINDOW_S
) -> list[tuple[float, float]]:
    """Items finished per second at each sample, over the `window_s` before it (or since the start)."""
    rates, first = [], 0
    for at, done in samples[1:]:
        while samples[first + 1][0] <= at - window_s:
            first += 1
        since, then = samples[first]
        rates.append((at, (done - then) / (at - since)))
    return rates


def _write_chart(path: Path, samples: list[tuple[float, int]], trawl: Phase, latency_ms: int) -> None:
    rates = throughput(samples)
    mean = trawl.rate
    drawn = chart.LineChart(
        points=[(0.0, 0.0), *rates],
        title=f"trawl end to end: {trawl.items:,} items in {trawl.seconds:.1f} s = {mean:.0f} items/s",
        subtitle=(
            f"python -m bench.e2e: TikTok accounts, local pipeline (embedded AWS), sandbox latency "
            f"{latency_ms} ms, {os.cpu_count()} cores"
        ),
        x_label="seconds since the upload began",
        y_label=f"items finished per second ({RATE_WINDOW_S:g} s window)",
        references=[(mean, f"mean {mean:.0f} items/s")],
    )
    print(f"chart: {chart.write(drawn, path)}", file=sys.stderr)


def _check_trawl(session: LocalSession, n: int) -> list[str]:
    """What a user would see after the timed phase: records in S3, messages left on the queue."""
    progress, sqs = session.runtime.progress, session.stack.endpoint.client("sqs")
    settle = time.monotonic() + 10
    while not session.runtime.idle() and time.monotonic() < settle:
        time.sleep(0.2)
    s3 = session.stack.endpoint.client("s3")
    records = sum(
        page.get("KeyCount", 0)
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=session.stack.bucket, Prefix="output/platform=tiktok/kind=account/"
        )
    )
    left = queue_depth(sqs, session.stack.queue_url("tiktok"))
    deletes = sum(progress.processed.values())
    notes = [f"trawl check: {records:,} records in S3 for {n:,} items; {deletes:,} messages deleted"]
    notes.append(f"  {left} messages still on the work queue 10 s later; invocation errors {progress.errors}")
    return notes


def _run_queue_ceiling(session: LocalSession, n: int, consumers: int, batch: int, put: bool) -> None:
    """Send -> receive -> delete, nothing else: the most the embedded SQS moves in this shape.
    With `put`, also one S3 PutObject per message: the least AWS work a record costs trawl."""
    sqs, s3 = session.stack.endpoint.client("sqs"), session.stack.endpoint.client("s3")
    url = sqs.create_queue(QueueName=f"bench-ceiling-{int(put)}")["QueueUrl"]
    names = enumerate(usernames("q", n), start=2)
    bodies = [work_item("c" * 16, name, row).model_dump_json() for row, name in names]
    room = threading.Semaphore(CEILING_MAX_OUTSTANDING)
    deleted = 0
    lock = threading.Lock()

    def produce() -> None:
        for start in range(0, n, 10):
            chunk = bodies[start : start + 10]
            for _ in chunk:
                room.acquire()
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

    def consume() -> None:
        nonlocal deleted
        while True:
            with lock:
                if deleted >= n:
                    return
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=batch, WaitTimeSeconds=1, AttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                continue
            for m in messages if put else []:
                key = f"ceiling/{m['MessageId']}.json"
                s3.put_object(Bucket=session.stack.bucket, Key=key, Body=m["Body"].encode())
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            with lock:
                deleted += len(messages)
            for _ in messages:
                room.release()

    threads = [threading.Thread(target=produce)]
    threads += [threading.Thread(target=consume) for _ in range(consumers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if queue_depth(sqs, url):
        raise RuntimeError("the ceiling loop left messages on its queue")


def run(n: int, sample: int, ceiling_n: int, latency_ms: int, chart_path: Path = CHART_PATH) -> None:
    quiet_handlers()
    faults = Faults.parse("", latency_ms=latency_ms)
    samples: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp, local_session(faults=faults) as s:
        csv_path = write_accounts_csv(Path(tmp) / f"bench_accounts_{n}.csv", usernames("acct", n))
        source = tiktok_worker(s).event_sources[0]
        phases = [_measure("trawl pipeline (upload -> records)", n, _run_trawl, s, csv_path, n, samples)]
        _write_chart(chart_path, samples, phases[0], latency_ms)
        notes = _check_trawl(s, n)
        s.runtime.stop()  # idle pollers would load the server during the other two measurements
        script = HandRunScript(s.sandbox.tikapi_url, s.stack.endpoint.client("s3"), s.stack.bucket)
        names = read_usernames(csv_path)[:sample]
        phases.append(_measure("hand-run script (same CSV, sample)", sample, script.run, names, "hr"))
        for put in (False, True):
            what = "send->receive->S3 put->delete" if put else "send->receive->delete"
            phases.append(
                _measure(
                    f"ceiling: {what}, {source.max_concurrency} consumers",
                    ceiling_n,
                    _run_queue_ceiling,
                    s,
                    ceiling_n,
                    source.max_concurrency,
                    source.batch_size,
                    put,
                )
            )
    _report(phases, notes, latency_ms, source.max_concurrency, source.batch_size)


def _report(phases: list[Phase], notes: list[str], latency_ms: int, concurrency: int, batch: int) -> None:
    print(
        f"e2e: TikTok accounts, sandbox latency {latency_ms} ms, TikTok MaximumConcurrency {concurrency}, "
        f"batch {batch} (2-core machine)"
    )
    rows = [
        [
            p.name,
            f"{p.items:,}",
            f"{p.seconds:.1f}",
            f"{p.rate:.0f}",
            f"{100 * p.bench_cpu_s / p.seconds:.0f}%",
            f"{100 * p.worker_cpu_s / p.seconds:.0f}%",
            f"{100 * p.moto_cpu_s / p.seconds:.0f}%",
            f"{1000 * p.cpu_s / p.items:.2f}",
        ]
        for p in phases
    ]
    headers = ["measurement", "items", "seconds", "items/s", "bench CPU", "workers CPU", "moto CPU"]
    headers.append("CPU ms/item")
    print(table(headers, rows))
    trawl, script, ceiling, ceiling_put = phases
    over_script, of_ceiling = trawl.rate / script.rate, trawl.rate / ceiling.rate
    print(
        f"ratio trawl / hand-run script: {over_script:.1f}x "
        f"(target >= {TARGET_OVER_SCRIPT:g}x: {verdict(over_script >= TARGET_OVER_SCRIPT)})"
    )
    print(
        f"ratio trawl / queue ceiling: {of_ceiling:.2f} "
        f"(target >= {TARGET_OF_CEILING:g}: {verdict(of_ceiling >= TARGET_OF_CEILING)})"
    )
    print(
        f"ratio trawl / ceiling with one S3 put per item: {trawl.rate / ceiling_put.rate:.2f} "
        "(the same embedded-AWS work per item as trawl's minimum)"
    )
    cores = os.cpu_count() or 1
    bound = cores * trawl.items / trawl.cpu_s
    print(
        f"CPU per item: trawl {1000 * trawl.cpu_s / trawl.items:.2f} ms, bare queue loop "
        f"{1000 * ceiling.cpu_s / ceiling.items:.2f} ms; with all {cores} cores busy trawl's work per item "
        f"allows at most {bound:.0f} items/s = {bound / ceiling.rate:.2f} of the queue ceiling"
    )
    print("\n".join(notes))
    print(
        "(CPU columns: share of one core over the phase. bench = this process: pollers, sandbox,\n"
        " the script and ceiling loops; workers = the execution environments' processes (the\n"
        " producer's and the workers'); moto = the embedded AWS server. 2 cores: 200% in all.)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=300, help="items for the hand-run script")
    parser.add_argument("--ceiling-items", type=int, default=3_000, help="messages for the queue ceiling")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--chart", type=Path, default=CHART_PATH, help="the throughput chart (SVG) to write")
    args = parser.parse_args()
    run(args.items, args.sample, args.ceiling_items, args.latency_ms, args.chart)


if __name__ == "__main__":
    main()
