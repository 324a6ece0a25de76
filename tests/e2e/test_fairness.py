"""Fairness between jobs on one queue: every message carries its job id as MessageGroupId (SQS
fair queues on standard queues), and locally, where moto accepts the attribute without the
fairness, the producer's pacing interleaves jobs: a small job finishes while a large one runs."""

from __future__ import annotations

from pathlib import Path

from trawl.local.session import local_session
from trawl.stack.jobs import job_summary
from trawl.stack.submit import submit, wait_for_jobs


def test_every_message_carries_its_job_as_message_group(tmp_path: Path) -> None:
    path = tmp_path / "grouped.csv"
    path.write_text("username\ngroup_one\ngroup_two\ngroup_three\n")
    with local_session(workers=False) as session:
        job_id = submit(session, path, "tiktok", "account")
        sqs, url = session.stack.endpoint.client("sqs"), session.stack.queue_url("tiktok")
        groups: list[str] = []
        for _ in range(50):
            found = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["MessageGroupId"]
            )
            groups += [m["Attributes"].get("MessageGroupId", "") for m in found.get("Messages", [])]
            if len(groups) == 3:
                break
    assert groups == [job_id] * 3


# The large job's first producer invocation is all that is queued ahead of the small job (the
# large one's continuation comes after it), so a quarter of the large job is ahead.
ROWS_PER_INVOCATION = 100
LARGE = 4 * ROWS_PER_INVOCATION


def test_a_small_job_finishes_while_a_large_one_runs(tmp_path: Path) -> None:
    large, small = tmp_path / "large.csv", tmp_path / "small.csv"
    large.write_text("username\n" + "".join(f"large_{n:05d}\n" for n in range(LARGE)))
    small.write_text("username\n" + "".join(f"small_{n:02d}\n" for n in range(10)))
    with local_session() as session:
        session.runtime.producer_env_overrides["MAX_ROWS_PER_INVOCATION"] = str(ROWS_PER_INVOCATION)
        large_job = submit(session, large, "tiktok", "account")
        small_job = submit(session, small, "tiktok", "account")
        (small_done,) = wait_for_jobs(session, [small_job], timeout_s=120)
        large_then = job_summary(session.stack, large_job)
        wait_for_jobs(session, [large_job], timeout_s=300)

    assert small_done.state == "done" and small_done.written_ok == 10
    assert large_then is not None and large_then.state == "running"
    assert large_then.written_ok < LARGE / 2, "the small job waited behind most of the large one"
