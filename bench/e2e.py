"""End-to-end benchmark (`python -m bench.e2e`): 10,000 TikTok accounts through the whole local
pipeline (upload, producer, queue, worker handlers, S3) against, in the same run and on the
same embedded AWS and sandbox:
  (a) the hand-run script trawl replaced: the same CSV, one item at a time (on a sample);
  (b) the embedded queue's own ceiling: a bare send -> receive -> delete loop with the same
      shape (batches of 10, as many consumer threads as the TikTok MaximumConcurrency).
Targets: trawl >= 10x the script, and >= 0.5 of the queue's ceiling. CPU seconds of this
process and of the moto child process are shown per phase, to see which one is the bottleneck."""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from trawl.local.pipeline import LocalSession, local_session, submit, wait_for_jobs
from trawl.local.stack import queue_depth
from trawl.sandbox import Faults

TARGET_OVER_SCRIPT = 10.0
TARGET_OF_CEILING = 0.5
# The ceiling loop keeps at most this many messages on the queue, as the local runtime does
# (LOCAL_ROWS_PER_INVOCATION + LOW_WATER): moto's SQS slows as a queue gets deeper.
CEILING_MAX_OUTSTANDING = 300


@dataclass
class Phase:
    name: str
    items: int
    seconds: float
    bench_cpu_s: float
    moto_cpu_s: float

    @property
    def rate(self) -> float:
        return self.items / self.seconds


def _moto_pid() -> int | None:
    """The embedded AWS child process (`python -m trawl.local.motoserver`)."""
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in children.read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"trawl.local.motoserver" in cmdline:
                return int(pid)
    return None


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _measure(name: str, items: int, moto: int | None, fn: Any, *args: Any) -> Phase:
    cpu0, moto0, start = time.process_time(), _cpu_s(moto), time.perf_counter()
    fn(*args)
    seconds = time.perf_counter() - start
    return Phase(name, items, seconds, time.process_time() - cpu0, _cpu_s(moto) - moto0)


def _run_trawl(session: LocalSession, csv_path: Path, n: int) -> None:
    job_id = submit(session, csv_path, "tiktok", "account")
    wait_for_jobs(session, [job_id], timeout_s=900)
    done, errors = session.runtime.progress.processed[job_id], session.runtime.progress.errors
    if done != n or errors:
        raise RuntimeError(f"trawl processed {done} of {n} items with {errors} invocation errors")


def _run_queue_ceiling(session: LocalSession, n: int, consumers: int, batch: int) -> None:
    """Send -> receive -> delete, nothing else: the most the embedded SQS moves in this shape."""
    sqs = session.stack.endpoint.client("sqs")
    url = sqs.create_queue(QueueName="bench-ceiling")["QueueUrl"]
    bodies = [work_item("c" * 16, name, row).model_dump_json() for row, name in enumerate(usernames("q", n))]
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


def run(n: int, sample: int, ceiling_n: int, latency_ms: int) -> None:
    quiet_handlers()
    faults = Faults.parse("", latency_ms=latency_ms)
    with tempfile.TemporaryDirectory() as tmp, local_session(faults=faults) as s:
        csv_path = write_accounts_csv(Path(tmp) / f"bench_accounts_{n}.csv", usernames("acct", n))
        source = tiktok_worker(s).event_sources[0]
        moto = _moto_pid()
        phases = [_measure("trawl pipeline (upload -> records)", n, moto, _run_trawl, s, csv_path, n)]
        s.runtime.stop()  # idle pollers would load the server during the other two measurements
        script = HandRunScript(s.sandbox.tikapi_url, s.stack.endpoint.client("s3"), s.stack.bucket)
        names = read_usernames(csv_path)[:sample]
        phases.append(_measure("hand-run script (same CSV, sample)", sample, moto, script.run, names, "hr"))
        phases.append(
            _measure(
                f"queue ceiling: send->receive->delete, {source.max_concurrency} consumers",
                ceiling_n,
                moto,
                _run_queue_ceiling,
                s,
                ceiling_n,
                source.max_concurrency,
                source.batch_size,
            )
        )
    _report(phases, latency_ms, source.max_concurrency, source.batch_size)


def _report(phases: list[Phase], latency_ms: int, concurrency: int, batch: int) -> None:
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
            f"{100 * p.moto_cpu_s / p.seconds:.0f}%",
        ]
        for p in phases
    ]
    print(table(["measurement", "items", "seconds", "items/s", "bench CPU", "moto CPU"], rows))
    trawl, script, ceiling = phases
    over_script, of_ceiling = trawl.rate / script.rate, trawl.rate / ceiling.rate
    print(
        f"ratio trawl / hand-run script: {over_script:.1f}x "
        f"(target >= {TARGET_OVER_SCRIPT:g}x: {verdict(over_script >= TARGET_OVER_SCRIPT)})"
    )
    print(
        f"ratio trawl / queue ceiling: {of_ceiling:.2f} "
        f"(target >= {TARGET_OF_CEILING:g}: {verdict(of_ceiling >= TARGET_OF_CEILING)})"
    )
    print("(CPU columns: share of one core over the phase; bench = this process, incl. the handlers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=300, help="items for the hand-run script")
    parser.add_argument("--ceiling-items", type=int, default=5_000, help="messages for the queue ceiling")
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    run(args.items, args.sample, args.ceiling_items, args.latency_ms)


if __name__ == "__main__":
    main()
