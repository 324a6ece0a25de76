"""Every worker batch delivered twice, as SQS's at-least-once delivery may: the ledger's counts
equal the distinct items, no item has two output objects, and no item is fetched again once its
outcome is settled."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.helpers import records, run_csv
from trawl.local.session import local_session
from trawl.stack.jobs import job_summary


def test_every_delivery_twice_counts_and_fetches_each_item_once(tmp_path: Path) -> None:
    accounts = [f"twice_{n:02d}" for n in range(30)] + ["ghost_twice", "private_twice"]
    with local_session(deliver_twice=True) as local:
        job_id = run_csv(
            local,
            tmp_path,
            "tiktok_twice.csv",
            "username\n" + "\n".join(accounts) + "\n",
            "tiktok",
            "account",
        )
        videos_job = run_csv(
            local, tmp_path, "tiktok_videos_twice.csv", "username\nvideos_95\n", "tiktok", "videos"
        )
        summary, videos = job_summary(local.stack, job_id), job_summary(local.stack, videos_job)
        written = records(local, job_id)  # fails on an item with two objects
        video_records = records(local, videos_job)
        calls = local.sandbox.calls()

    assert summary is not None and videos is not None
    assert (summary.enqueued, summary.written_ok, summary.written_permanent) == (32, 30, 2)
    assert summary.permanent_by_status == {"not_found": 1, "private": 1}
    assert (summary.records, summary.in_flight, summary.state) == (32, 0, "done")
    assert set(written) == set(accounts)
    checks = Counter({target: n for (method, path, target), n in calls.items() if path == "/public/check"})
    assert all(checks[name] == 1 for name in accounts), checks  # each fetched once, not twice
    # The videos account: 95 videos over a first message of three pages and a follow-up of one,
    # each page fetched once and its records counted once.
    assert (videos.written_ok, videos.records, videos.state) == (1, 95, "done")
    assert len(video_records) == 95
    pages = [n for (method, path, target), n in calls.items() if path == "/public/posts"]
    assert len(pages) == 4 and set(pages) == {1}
