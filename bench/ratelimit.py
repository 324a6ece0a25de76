"""Running at the rate the API allows (`python -m bench.ratelimit`): the sandbox enforces a Zyte
key limit (1,200 requests a minute by default) and answers each call after 500 ms; 3,000 product
items split unevenly across the marketplaces (2,000 Shopee, 500 Tokopedia, 500 Lazada) run
through the local stack twice, side by side: once with ZyteRequestsPerMinute set to the limit
(the shared rate budget), once with the event sources' concurrency caps alone. Printed for each:
items/s over the permitted rate (target >= 0.9), the share of calls answered 429 (target
<= 1%), the most calls the sandbox accepted in any 60 seconds (must not exceed the limit) and
the most it was sent, and items dead-lettered (target 0)."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.common import most_in_window, quiet_handlers, table, verdict
from trawl.local.session import local_session
from trawl.sandbox import Faults
from trawl.stack.jobs import job_summary
from trawl.stack.submit import submit, wait_for_jobs

SPLIT = {"shopee": 2_000, "tokopedia": 500, "lazada": 500}


def product_urls(platform: str, n: int, run: str) -> list[str]:
    if platform == "shopee":
        return [f"https://shopee.co.id/product/{run}{i:06d}/1{i:07d}" for i in range(n)]
    if platform == "tokopedia":
        return [f"https://www.tokopedia.com/bench{run}/item-{i}" for i in range(n)]
    return [f"https://www.lazada.co.id/products/item-i{run}{i:07d}.html" for i in range(n)]


@dataclass
class Run:
    name: str
    items: int
    seconds: float
    calls: int
    throttled: int
    most_accepted_per_minute: int
    most_sent_per_minute: int
    dead_lettered: int
    done: bool

    def ratio(self, per_minute: int) -> float:
        return self.items / self.seconds / (per_minute / 60)


def one_run(name: str, per_minute: int, latency_ms: int, budget: bool, scale: float, folder: Path) -> Run:
    faults = Faults.parse(f"rpm={per_minute}", latency_ms=latency_ms)
    parameters = {"ZyteRequestsPerMinute": str(per_minute if budget else 0)}
    with local_session(faults=faults, parameters=parameters) as session:
        files = []
        for platform, n in SPLIT.items():
            path = folder / f"{name}-{platform}.csv"
            urls = product_urls(platform, max(1, int(n * scale)), "9" if budget else "8")
            path.write_text("url\n" + "".join(f"{url}\n" for url in urls))
            files.append((path, platform))
        started = time.monotonic()
        jobs = [submit(session, path, platform, "product") for path, platform in files]
        wait_for_jobs(session, jobs, timeout_s=3600)
        seconds = time.monotonic() - started
        summaries = [job_summary(session.stack, job) for job in jobs]
        calls = [c for c in session.sandbox.call_log() if c.api == "zyte"]
    return Run(
        name=name,
        items=sum(s.enqueued for s in summaries if s),
        seconds=seconds,
        calls=len(calls),
        throttled=sum(c.status == 429 for c in calls),
        most_accepted_per_minute=most_in_window([c.at for c in calls if c.status != 429]),
        most_sent_per_minute=most_in_window([c.at for c in calls]),
        dead_lettered=sum(s.dead_lettered for s in summaries if s),
        done=all(s is not None and s.state in ("done", "failed") for s in summaries),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpm", type=int, default=1_200, help="the sandbox's Zyte key limit")
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--scale", type=float, default=1.0, help="share of the 3,000 items to run")
    args = parser.parse_args()
    quiet_handlers()
    print(
        f"ratelimit: {int(3000 * args.scale):,} product items (Shopee/Tokopedia/Lazada 4:1:1), sandbox "
        f"Zyte limit {args.rpm:,}/min, {args.latency_ms} ms a call, 2-core machine"
    )
    with TemporaryDirectory() as folder:
        runs = [
            one_run("budget", args.rpm, args.latency_ms, True, args.scale, Path(folder)),
            one_run("caps-only", args.rpm, args.latency_ms, False, args.scale, Path(folder)),
        ]
    rows = []
    for run in runs:
        share = run.throttled / run.calls if run.calls else 0.0
        rows.append(
            [
                "ZyteRequestsPerMinute = limit" if run.name == "budget" else "concurrency caps alone",
                f"{run.items:,}",
                f"{run.seconds:.1f}",
                f"{run.ratio(args.rpm):.2f} {verdict(run.ratio(args.rpm) >= 0.9)}",
                f"{share:.1%} {verdict(share <= 0.01)}",
                f"{run.most_accepted_per_minute:,} {verdict(run.most_accepted_per_minute <= args.rpm)}",
                f"{run.most_sent_per_minute:,}",
                f"{run.dead_lettered} {verdict(run.dead_lettered == 0)}",
            ]
        )
    headers = [
        "run",
        "items",
        "seconds",
        "items/s / permitted (>= 0.9)",
        "calls 429 (<= 1%)",
        "most accepted in 60 s (<= limit)",
        "most sent in 60 s",
        "dead-lettered (0)",
    ]
    print(table(headers, rows))
    for run in runs:
        if not run.done:
            print(f"{run.name}: its jobs had not ended when the wait ran out")


if __name__ == "__main__":
    main()
