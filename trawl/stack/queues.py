"""Each platform's queues as the dashboard's Queues page shows them: the work queue's and the
dead-letter queue's depths (SQS attributes), and how long the platform's oldest work in flight
has waited, from the job ledger (SQS has no attribute for it, and moto no CloudWatch metrics)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ledger.view import read_job, recent_jobs
from trawl.stack.describe import Stack

RECENT_JOBS = 100  # the job rows looked at: one Query of the `recent` index
MAX_JOB_READS = 10  # of them, how many jobs' counter rows are read per call (one Query each)


@dataclass(frozen=True)
class QueueStats:
    platform: str
    visible: int  # ApproximateNumberOfMessages
    in_flight: int  # ApproximateNumberOfMessagesNotVisible
    dead_letters: int  # the platform's DLQ ApproximateNumberOfMessages
    oldest_age_s: float | None  # age of the oldest message not yet handled, from the ledger


def queue_stats(stack: Stack, now: dt.datetime | None = None) -> list[QueueStats]:
    """Every platform's queues, in a fixed number of requests whatever the jobs' sizes: two
    GetQueueAttributes per platform, one Query of the recent jobs, and at most MAX_JOB_READS
    Queries of job counters.

    `oldest_age_s` is the age of the platform's oldest job with items in flight (enqueued items
    that have not ended: neither settled, dead-lettered nor stale): the seconds since its
    producer created it. Every message of the job (a follow-up page's, a re-driven one's) was
    sent after that, so none of its unhandled messages is older: an upper bound for their age,
    close to it while the job's first messages wait. None when no job looked at has items in
    flight. What is looked at: the stack's RECENT_JOBS newest jobs, less those announced `done`
    (they never change again), of which at most MAX_JOB_READS have their counts read: first,
    oldest first, the jobs not yet announced finished, until each platform has one in flight;
    then, with the reads left, the older jobs announced `failed` (a re-drive puts their items
    back in flight). So it misses a job older than the newest RECENT_JOBS, or a re-driven one
    behind many failed jobs; and an item whose message was lost without a worker seeing it
    keeps its job in flight until the reconcile pass marks it stale (the work queue's retention
    plus an hour)."""
    sqs = stack.endpoint.client("sqs")
    ages = _oldest_in_flight(
        stack.endpoint.client("dynamodb"), stack.ledger_table, stack.platforms, now or dt.datetime.now(dt.UTC)
    )
    found = []
    for platform in stack.platforms:
        work = _attributes(sqs, stack.queue_url(platform))
        dead = _attributes(sqs, stack.dlq_url(platform))
        found.append(
            QueueStats(
                platform=platform,
                visible=work["ApproximateNumberOfMessages"],
                in_flight=work["ApproximateNumberOfMessagesNotVisible"],
                dead_letters=dead["ApproximateNumberOfMessages"],
                oldest_age_s=ages.get(platform),
            )
        )
    return found


def _attributes(sqs: Any, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {name: int(found.get(name, 0)) for name in names}


def _oldest_in_flight(db: Any, table: str, platforms: list[str], now: dt.datetime) -> dict[str, float]:
    """platform -> seconds since its oldest job with items in flight was created (see
    queue_stats for which jobs are looked at)."""
    jobs = [
        job
        for job in recent_jobs(db, table, limit=RECENT_JOBS)
        if job.get("platform") in platforms and job.get("finished_state") != "done"
    ]
    # Not announced first: nearly always in flight. Then the failed ones, which seldom are.
    jobs.sort(key=lambda job: (job.get("finished_state") is not None, _created(job)))
    oldest: dict[str, dt.datetime] = {}
    reads = 0
    for job in jobs:
        platform, created = str(job["platform"]), _created(job)
        if platform in oldest and oldest[platform] <= created:
            continue  # it could not make the platform's answer older
        if reads == MAX_JOB_READS:
            break
        reads += 1
        view = read_job(db, table, str(job["job_id"]))
        if view is not None and view.in_flight > 0:
            oldest[platform] = created
    return {platform: max(0.0, (now - created).total_seconds()) for platform, created in oldest.items()}


def _created(job: dict[str, Any]) -> dt.datetime:
    created = dt.datetime.fromisoformat(str(job["created_at"]))
    return created if created.tzinfo is not None else created.replace(tzinfo=dt.UTC)
