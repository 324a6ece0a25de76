"""What the dashboard's pages show, read through the functions the CLI uses (trawl.stack, the
ledger's views), with a bounded number of AWS requests per page whatever a job's size: the
recent jobs and their counter rows, one job's summary and open items, a few of its records."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any

from ledger.view import read_job
from models.ledger import PERMANENT, Counts
from trawl.stack.describe import Stack
from trawl.stack.jobs import JobSummary
from trawl.stack.ops import dead_lettered_items, job_status, recent_jobs
from trawl.stack.queues import queue_stats
from trawl.stack.watch import runs as watch_runs
from trawl.stack.watch import views as watch_lists

__all__ = ["job_lines", "job_page", "queue_stats", "record_names", "watch_lists"]

RECENT_JOBS = 20  # on the jobs page: one ledger Query for them, one for each one's counts
DEAD_LETTERS_SHOWN = 100
SAMPLE_RECORDS = 5  # a listing of at most this many keys, then one GET each
RECORDS_PER_PAGE = 100  # the records browser's listing page
PREVIOUS_RUNS = 10  # a watch list's other runs on a job page
RUNNING = ("running", "retrying")


@dataclass(frozen=True)
class Segment:
    """One outcome's stretch of a progress bar, in percent of the job's items."""

    outcome: str  # ok, permanent, dead_lettered, stale, in_flight
    count: int
    x: float
    width: float


def progress(ok: int, permanent: int, dead_lettered: int, stale: int, in_flight: int) -> list[Segment]:
    parts = [
        ("ok", ok),
        ("permanent", permanent),
        ("dead_lettered", dead_lettered),
        ("stale", stale),
        ("in_flight", in_flight),
    ]
    total = sum(n for _, n in parts)
    found, x = [], 0.0
    for outcome, n in parts:
        if n:
            width = 100.0 * n / total
            found.append(Segment(outcome, n, round(x, 3), round(width, 3)))
            x += width
    return found


def _when(text: object) -> dt.datetime | None:
    if not text:
        return None
    try:
        found = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=dt.UTC)


def _duration(started: dt.datetime | None, finished: dt.datetime | None, settled: bool) -> float | None:
    """Seconds from the upload to the job's end (to now while it runs)."""
    if started is None or (settled and finished is None):
        return None
    end = finished if settled and finished else dt.datetime.now(dt.UTC)
    return max(0.0, (end - started).total_seconds())


@dataclass(frozen=True)
class JobLine:
    """A job on the jobs page, from its ledger rows."""

    job_id: str
    platform: str | None
    kind: str | None
    input_key: str
    state: str
    started: dt.datetime | None
    duration_s: float | None
    enqueued: int
    counts: dict[str, int]
    bar: list[Segment]

    @property
    def running(self) -> bool:
        return self.state in RUNNING


def _job_line(row: dict[str, Any], counts: Counts, state: str) -> JobLine:
    enqueued = int(row.get("enqueued", 0))
    in_flight = max(0, enqueued - counts.ended) if row.get("producer") != "failed" else 0
    started = _when(row.get("created_at"))
    settled = state in ("done", "failed")
    finished = _when(row.get("finished_at")) if row.get("finished_state") == state else None
    numbers = {
        "ok": counts.ok,
        "permanent": counts.permanent,
        "dead_lettered": counts.dead_lettered,
        "stale": counts.stale,
        "in_flight": in_flight,
    }
    return JobLine(
        job_id=str(row["job_id"]),
        platform=row.get("platform"),
        kind=row.get("kind"),
        input_key=str(row.get("input_key", "")),
        state=state,
        started=started,
        duration_s=_duration(started, finished, settled),
        enqueued=enqueued,
        counts=numbers,
        bar=progress(**numbers),
    )


def job_lines(stack: Stack) -> list[JobLine]:
    """The recent jobs, newest first: 1 + RECENT_JOBS ledger Queries at most."""
    db = stack.endpoint.client("dynamodb")
    lines = []
    for row in recent_jobs(stack, RECENT_JOBS):
        view = read_job(db, stack.ledger_table, str(row["job_id"]))
        if view is not None:
            lines.append(_job_line(view.job, view.counts, view.state()))
    return lines


@dataclass(frozen=True)
class Record:
    key: str  # the object's name under the job's output prefix
    item_key: str
    status: str
    fetched_at: str
    data: dict[str, Any]


@dataclass
class JobPage:
    summary: JobSummary
    started: dt.datetime | None
    duration_s: float | None
    watch: str | None
    bar: list[Segment]
    retryable: list[tuple[str, int]]
    permanent: list[tuple[str, int]]
    chart: dict[str, list[float]]
    dead_letters: list[dict[str, Any]]
    records_prefix: str | None  # the key prefix of the job's output objects
    sample: list[Record]
    sample_fields: list[str]
    coverage: list[tuple[str, float]]
    previous: list[JobLine] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.summary.state in RUNNING

    @property
    def can_redrive(self) -> bool:
        return bool(self.summary.platform) and self.summary.dead_lettered > 0


def job_page(stack: Stack, job_id: str) -> JobPage:
    """One job: its summary (manifest + ledger counts), its job row, its open items, a few
    records, its watch list's other runs; the same number of requests for 100 items or a million.
    LookupError for a job the stack does not have."""
    summary = job_status(stack, job_id)
    db = stack.endpoint.client("dynamodb")
    row = db.get_item(
        TableName=stack.ledger_table, Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}}
    ).get("Item", {})
    started = _when(row.get("created_at", {}).get("S"))
    finished = _when(row.get("finished_at", {}).get("S"))
    if row.get("finished_state", {}).get("S") != summary.state:
        finished = None
    watch = row.get("watch", {}).get("S")
    prefix = summary.output_prefix.split("/", 3)[3] + f"{job_id}-" if summary.output_prefix else None
    sample = record_sample(stack, prefix) if prefix else []
    return JobPage(
        summary=summary,
        started=started,
        duration_s=_duration(started, finished, summary.settled),
        watch=watch,
        bar=progress(
            summary.written_ok,
            summary.written_permanent,
            summary.dead_lettered,
            summary.stale,
            summary.in_flight,
        ),
        retryable=[(r, n) for r, n in summary.failure_reasons.items() if r not in PERMANENT],
        permanent=[(r, n) for r, n in summary.failure_reasons.items() if r in PERMANENT],
        chart=throughput(summary),
        dead_letters=dead_lettered_items(stack, job_id, DEAD_LETTERS_SHOWN),
        records_prefix=prefix,
        sample=sample,
        sample_fields=list(dict.fromkeys(name for record in sample for name in record.data)),
        coverage=sorted(summary.coverage.items()),
        previous=previous_runs(stack, watch, job_id) if watch else [],
    )


def throughput(summary: JobSummary) -> dict[str, list[float]]:
    """The job's minutes as the chart draws them: epoch seconds, items ended and ok per second."""
    chart: dict[str, list[float]] = {"x": [], "ended": [], "ok": [], "throttled": []}
    for minute in summary.timeline:
        at = _when(minute.at)
        if at is None:
            continue
        chart["x"].append(at.timestamp())
        chart["ended"].append(round(minute.ended / 60, 3))
        chart["ok"].append(round(minute.ok / 60, 3))
        chart["throttled"].append(round(minute.throttled / 60, 3))
    return chart


def record_sample(stack: Stack, prefix: str, n: int = SAMPLE_RECORDS) -> list[Record]:
    """The first `n` of the job's records: one listing of n keys, one GET each."""
    s3 = stack.endpoint.client("s3")
    listed = s3.list_objects_v2(Bucket=stack.bucket, Prefix=prefix, MaxKeys=n).get("Contents", [])
    found = []
    for obj in listed:
        body = s3.get_object(Bucket=stack.bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
        name = obj["Key"].rsplit("/", 1)[1]
        found += [_record(name, r) for r in parse_records(body, obj["Key"].endswith(".csv"))]
    return found[:n]


def parse_records(body: str, is_csv: bool) -> list[dict[str, Any]]:
    """An output object's records, either format (docs/contract.md, "Output record"), with the
    CSV format's `data_` columns gathered back into `data`."""
    if not is_csv:
        return [json.loads(line) for line in body.splitlines() if line.strip()]
    rows = []
    for row in csv.DictReader(io.StringIO(body)):
        data = {k.removeprefix("data_"): v or None for k, v in row.items() if k.startswith("data_")}
        rows.append({k: v for k, v in row.items() if not k.startswith("data_")} | {"data": data})
    return rows


def _record(name: str, record: dict[str, Any]) -> Record:
    return Record(
        key=name,
        item_key=str(record.get("item_key", "")),
        status=str(record.get("status", "")),
        fetched_at=str(record.get("fetched_at", "")),
        data=record.get("data") or {},
    )


def record_names(stack: Stack, prefix: str, after: str | None) -> tuple[list[str], str | None]:
    """One page of the names of the job's output objects (the records browser), and the name to
    start the next page after, when there is one."""
    folder = prefix.rsplit("/", 1)[0] + "/"
    request: dict[str, Any] = {"Bucket": stack.bucket, "Prefix": prefix, "MaxKeys": RECORDS_PER_PAGE}
    if after:
        request["StartAfter"] = folder + after
    listed = stack.endpoint.client("s3").list_objects_v2(**request)
    names = [obj["Key"][len(folder) :] for obj in listed.get("Contents", [])]
    return names, (names[-1] if listed.get("IsTruncated") and names else None)


def previous_runs(stack: Stack, watch: str, job_id: str) -> list[JobLine]:
    """The watch list's other runs, newest first, with their counts: one Query of the ledger's
    `watch` index, then one per run shown (at most PREVIOUS_RUNS)."""
    db = stack.endpoint.client("dynamodb")
    lines: list[JobLine] = []
    for row in watch_runs(stack, watch, PREVIOUS_RUNS + 1):
        view = read_job(db, stack.ledger_table, str(row["job_id"])) if row["job_id"] != job_id else None
        if view is not None and len(lines) < PREVIOUS_RUNS:
            lines.append(_job_line(view.job, view.counts, view.state()))
    return lines
