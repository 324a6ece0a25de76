"""A job as users see it (docs/contract.md, "Commands"): its manifest (what the producer did)
and its ledger counts (what became of its items, minute by minute, and its records' field
coverage), read with two requests whatever its size. `run`, `demo` and `status` all print
this, so they print the same numbers for a job."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.view import JobView, read_job
from models import JobManifest
from models.ledger import PERMANENT, Counts, job_state
from producer.store import JobStore
from trawl.stack.describe import Stack
from workers.output import DATA_MODELS
from workers.ratelimit import State


@dataclass(frozen=True)
class Minute:
    """One minute of a job, from the ledger's per-minute counters: each item counts at the
    minute a worker (or the reconcile pass) wrote its end, each throttled call at the minute
    its delivery was written."""

    at: str  # the minute's start, ISO-8601 UTC, e.g. "2026-12-02T05:01:00Z"
    ended: int  # items that reached an end outcome in that minute
    ok: int  # of them, ok
    throttled: int  # upstream calls answered 429/503 in that minute

    @classmethod
    def of(cls, minute: str, counts: Counter[str]) -> Minute:
        """From the ledger's "YYYYMMDDHHMM" and its counts."""
        at = dt.datetime.strptime(minute, "%Y%m%d%H%M").strftime("%Y-%m-%dT%H:%M:00Z")
        return cls(at, counts["ended"], counts["ok"], counts["throttled"])


@dataclass
class JobSummary:
    """One job. Items and records are kept apart: the item counts (`enqueued`, `written_ok`,
    `written_permanent`, `dead_lettered`, `stale`, `in_flight`) count accounts for
    tiktok/videos; `records` counts what was written (video rows for tiktok/videos)."""

    job_id: str
    input_key: str
    platform: str | None
    kind: str | None
    status: str  # the producer's: running, retrying, enqueued, failed
    message: str | None
    rows: int
    enqueued: int
    duplicates: int
    rejected: int
    written_ok: int
    written_permanent: int
    dead_lettered: int
    in_flight: int
    output_prefix: str | None
    data_dir: str | None
    state: str = "running"
    stale: int = 0
    records: int = 0
    permanent_by_status: dict[str, int] = field(default_factory=dict)
    failure_reasons: dict[str, int] = field(default_factory=dict)  # retryable and permanent alike
    throttled: int = 0  # deliveries that failed on a 429/503
    calls: int = 0  # upstream calls made for the job's items
    throttled_calls: int = 0  # of them, answered 429/503 (most waited out within their invocation)
    # The API key's rate budget as it stands now, when the platform's key has one: its limit,
    # the calls per minute allowed now (after 429s, less) and for this platform alone.
    rate: dict[str, Any] | None = None
    timeline: list[Minute] = field(default_factory=list)  # sorted by `at`; minutes with nothing are absent
    # Data field -> share (0..1) of the ok records with a value (every field of the kind); {}
    # while there is no ok record.
    coverage: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, bucket: str, m: JobManifest, view: JobView | None, data_dir: str | None = None) -> JobSummary:
        counts = view.counts if view is not None else Counts()
        producer = m.producer_state(dt.datetime.now(dt.UTC))
        prefix = (
            f"s3://{bucket}/output/platform={m.platform}/kind={m.kind}/dt={m.job_date}/"
            if m.platform
            else None
        )
        return cls(
            job_id=m.job_id,
            input_key=m.input.key,
            platform=m.platform,
            kind=m.kind,
            status=producer,
            message=m.message,
            rows=m.rows_read,
            enqueued=m.enqueued,
            duplicates=m.duplicates,
            rejected=m.rejected,
            written_ok=counts.ok,
            written_permanent=counts.permanent,
            dead_lettered=counts.dead_lettered,
            in_flight=max(0, m.enqueued - counts.ended) if producer != "failed" else 0,
            output_prefix=prefix,
            data_dir=data_dir,
            state=job_state(producer, m.enqueued, counts),
            stale=counts.stale,
            records=counts.records,
            permanent_by_status={s: n for s, n in sorted(counts.outcomes.items()) if n and s in PERMANENT},
            failure_reasons=dict(counts.top_reasons(10)),
            throttled=counts.reasons["throttled"],
            calls=counts.calls,
            throttled_calls=counts.throttled_calls,
            timeline=[Minute.of(minute, found) for minute, found in counts.timeline()],
            coverage=counts.coverage(DATA_MODELS[m.kind].model_fields if m.kind in DATA_MODELS else ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def succeeded(self) -> bool:
        return self.state == "done"

    @property
    def settled(self) -> bool:
        return self.state in ("done", "failed")


def load_manifest(stack: Stack, job_id: str) -> JobManifest | None:
    """The job's manifest, read the way the producer reads it."""
    return JobStore(stack.endpoint.client("s3"), stack.bucket).load_manifest(job_id)


def job_summary(stack: Stack, job_id: str, data_dir: str | None = None) -> JobSummary | None:
    """The job's manifest and its ledger rows: two requests, whatever the job's size (a third
    when its platform's API key has a rate budget)."""
    manifest = load_manifest(stack, job_id)
    if manifest is None:
        return None
    db = stack.endpoint.client("dynamodb")
    view = read_job(db, stack.ledger_table, job_id)
    summary = JobSummary.of(stack.bucket, manifest, view, data_dir)
    if manifest.platform:
        summary.rate = rate_now(stack, db, manifest.platform)
    return summary


def rate_now(stack: Stack, db: Any, platform: str) -> dict[str, Any] | None:
    """The platform's API key's rate budget now: None when it has none (RequestsPerMinute 0)."""
    worker = next((f for f in stack.workers() if f.env.get("PLATFORM") == platform), None)
    if worker is None or not int(worker.env.get("RATE_LIMIT_RPM") or 0):
        return None
    key, limit = worker.env["RATE_LIMIT_KEY"], int(worker.env["RATE_LIMIT_RPM"])
    row = db.get_item(
        TableName=stack.ledger_table, Key={"pk": {"S": f"RATE#{key}"}, "sk": {"S": "BUCKET"}}
    ).get("Item")
    now = dt.datetime.now(dt.UTC).timestamp()
    state = State.from_json(row["state"]["S"]) if row else None
    key_factor = state.key.factor_now(now) if state else 1.0
    domain = state.domains.get(platform) if state else None
    platform_factor = min(key_factor, domain.factor_now(now)) if domain else key_factor
    return {
        "key": key,
        "limit_per_minute": limit,
        "allowed_per_minute": round(limit * key_factor),
        "platform_allowed_per_minute": round(limit * platform_factor),
    }
