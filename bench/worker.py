"""Worker benchmark (`python -m bench.worker`): one SQS batch of 10 TikTok accounts through the
real worker handler (workers.handler.build_deps + handle, a real batch received from the
embedded SQS) against the same 10 items fetched one after another by a hand-run script, side by
side in one run, with the sandbox upstream answering after a fixed latency.

The batch should cost about one upstream round trip, not ten: target batch / one item <= 1.5x."""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import (
    HandRunScript,
    LocalContext,
    median,
    quiet_handlers,
    send_and_receive,
    table,
    tiktok_worker,
    timed,
    usernames,
    verdict,
    work_item,
    worker_env,
)
from trawl.local.events import sqs_event
from trawl.local.session import LocalSession, local_session
from trawl.sandbox import Faults

BATCH = 10
TARGET_BATCH_OVER_ONE = 1.5


def _event(session: LocalSession, job_id: str, names: list[str]) -> dict[str, Any]:
    sqs = session.stack.endpoint.client("sqs")
    items = [work_item(job_id, name, row) for row, name in enumerate(names, start=2)]
    messages = send_and_receive(sqs, session.stack.queue_url("tiktok"), items)
    source = tiktok_worker(session).event_sources[0]
    return sqs_event(messages, source.queue_arn, session.stack.endpoint.region)


def _invoke(session: LocalSession, handler: Any, deps: Any, event: dict[str, Any]) -> float:
    seconds, result = timed(handler.handle, event, LocalContext(tiktok_worker(session)), deps)
    if result != {"batchItemFailures": []}:
        raise RuntimeError(f"the worker reported failures: {result}")
    return float(seconds)


def run(batches: int, singles: int, latency_ms: int) -> None:
    quiet_handlers()
    from workers import handler  # after quiet_handlers: its Logger reads the level at import

    with local_session(faults=Faults.parse("", latency_ms=latency_ms)) as session:
        session.runtime.stop()  # the bench plays the event source mapping; no poller may take its messages
        env = worker_env(session)
        # Cold: a new container (clients, SSM key, first connections) serving its first batch.
        event = _event(session, f"{0:016x}", usernames("cold", BATCH))
        build_s, deps = timed(handler.build_deps, env)
        first_s = _invoke(session, handler, deps, event)
        warm = [
            _invoke(session, handler, deps, _event(session, f"{n:016x}", usernames(f"warm{n}", BATCH)))
            for n in range(1, batches)
        ]
        one = [
            _invoke(session, handler, deps, _event(session, f"{n:016x}", [f"one_{n}"]))
            for n in range(100, 100 + singles)
        ]
        script = HandRunScript(
            session.sandbox.tikapi_url, session.stack.endpoint.client("s3"), session.stack.bucket
        )
        sequential = [
            timed(script.run, usernames(f"seq{n}", BATCH), f"handrun/{n}")[0] for n in range(batches)
        ]
    _report(latency_ms, (build_s, first_s), warm, one, sequential)


def _report(
    latency_ms: int,
    cold: tuple[float, float],
    warm: list[float],
    one: list[float],
    sequential: list[float],
) -> None:
    build_s, first_s = cold
    cold_s = build_s + first_s
    warm_s, one_s, seq_s = median(warm), median(one), median(sequential)
    ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
    print(f"worker: one batch of {BATCH} TikTok accounts, sandbox latency {latency_ms} ms (2-core machine)")
    print(
        table(
            ["measurement", "runs", "median ms", "min ms", "max ms"],
            [
                ["trawl batch, cold container (build_deps + handle)", 1, ms(cold_s), "", ""],
                ["  of which build_deps (clients, settings)", 1, ms(build_s), "", ""],
                ["  of which the first handle", 1, ms(first_s), "", ""],
                ["trawl batch, warm container", len(warm), ms(warm_s), ms(min(warm)), ms(max(warm))],
                ["trawl one item, warm container", len(one), ms(one_s), ms(min(one)), ms(max(one))],
                [
                    f"hand-run script, {BATCH} items one after another",
                    len(sequential),
                    ms(seq_s),
                    ms(min(sequential)),
                    ms(max(sequential)),
                ],
            ],
        )
    )
    ratio = warm_s / one_s
    print(
        f"ratio warm batch / one item: {ratio:.2f}x "
        f"(target <= {TARGET_BATCH_OVER_ONE}x: {verdict(ratio <= TARGET_BATCH_OVER_ONE)})"
    )
    print(f"ratio cold batch / one item: {cold_s / one_s:.2f}x")
    print(f"speedup over the hand-run script: {seq_s / warm_s:.1f}x (warm batch vs {BATCH} sequential)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=5, help="batches of 10 (the first is cold)")
    parser.add_argument("--singles", type=int, default=5, help="one-item invocations (warm)")
    parser.add_argument("--latency-ms", type=int, default=200)
    args = parser.parse_args()
    run(args.batches, args.singles, args.latency_ms)


if __name__ == "__main__":
    main()
