"""What a job costs on AWS (`trawl cost`): trawl's SQS fan-out next to a Step Functions
Distributed Map doing the same work. Pure arithmetic over list prices that are inputs (a frozen
dataclass), never fetched live; every line says what it counts, so the result can be checked by
hand. Free tiers are ignored: they are per account, not per job."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prices:
    """us-east-1 on-demand list prices in USD, as assumed on `as_of`; inputs, not live prices."""

    as_of: str = "2025-06-01"
    region: str = "us-east-1"
    sqs_per_million_requests: float = 0.40  # standard queue; one request per 64 KB chunk
    lambda_per_million_requests: float = 0.20
    lambda_arm64_per_gb_second: float = 0.0000133334  # first pricing tier (6 B GB-s a month)
    s3_put_per_thousand: float = 0.005  # PUT, COPY, POST, LIST (S3 Standard)
    s3_get_per_thousand: float = 0.0004  # GET, SELECT and all other requests
    sfn_standard_per_thousand_transitions: float = 0.025
    sfn_express_per_million_requests: float = 1.00
    sfn_express_per_gb_second: float = 0.00001667  # first tier; billed per 100 ms, 64 MB minimum
    dynamodb_per_million_write_units: float = 0.625  # on-demand; one unit writes up to 1 KB
    dynamodb_per_million_read_units: float = 0.125  # on-demand; one unit reads 4 KB strongly, 8 KB eventually
    dynamodb_per_gb_month: float = 0.25  # standard table class


@dataclass(frozen=True)
class Workload:
    """One job (or a day of jobs): what drives the request counts. Defaults are trawl's template
    defaults (batch 10, workers 512 MB, producer 1024 MB) and round-number assumptions."""

    items: int
    avg_latency_ms: float = 2_000.0  # one upstream call; a batch's items run concurrently
    invocation_overhead_ms: float = 100.0  # per worker invocation: S3 PUTs, SQS calls, JSON
    batch_size: int = 10  # WorkerBatchSize
    fetch_concurrency: int = 10  # FETCH_CONCURRENCY: a batch's items fetched at once
    # The API key's rate budget (RequestsPerMinute > 0): calls that take their tokens in one
    # request pair, on average. Calls waiting together share a take; at the limit, tokens come
    # one at a time and so does each take. 0: no rate budget.
    calls_per_take: float = 0.0
    worker_memory_mb: int = 512
    producer_memory_mb: int = 1024
    producer_items_per_second: float = 2_000.0  # validate, dedupe, SendMessageBatch
    retry_rate: float = 0.05  # share of deliveries that fail retryably and come back
    continuations_per_item: float = 0.0  # tiktok/videos: extra messages for later pages
    records_per_item: float = 1.0  # tiktok/videos: one record per video
    jobs: int = 1  # input files: each has a manifest and rejects.csv
    query_reads_per_record: float = 1.0  # GETs by Athena/DuckDB reading the output once
    sfn_items_per_child: int = 1  # Distributed Map ItemBatcher size (1 = one child per item)
    sfn_express_memory_mb: int = 64  # an Express child waiting on Lambda bills the 64 MB minimum
    ledger_batch: int = 1_000  # item row changes per ledger function invocation (its BatchSize)
    ledger_item_row_bytes: int = 300  # an item's row in the ledger (well under 1 KB)
    ledger_ttl_days: int = 30  # LedgerItemTtlDays: how long an item's row is stored

    def __post_init__(self) -> None:
        if self.items < 0 or self.batch_size < 1 or self.sfn_items_per_child < 1 or self.jobs < 1:
            raise ValueError("items >= 0, batch_size >= 1, sfn_items_per_child >= 1 and jobs >= 1")
        if self.fetch_concurrency < 1 or self.calls_per_take < 0:
            raise ValueError("fetch_concurrency >= 1 and calls_per_take >= 0")
        if not 0.0 <= self.retry_rate < 1.0:
            raise ValueError(f"retry_rate must be in [0, 1), got {self.retry_rate}")
        if self.avg_latency_ms < 0 or self.invocation_overhead_ms < 0 or self.producer_items_per_second <= 0:
            raise ValueError("latencies must be >= 0 and producer_items_per_second > 0")


@dataclass(frozen=True)
class Line:
    service: str
    what: str
    quantity: float
    unit: str
    cost: float


@dataclass(frozen=True)
class Estimate:
    name: str
    items: int
    lines: tuple[Line, ...] = field(default_factory=tuple)

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)

    @property
    def per_million_items(self) -> float:
        return self.total / self.items * 1_000_000 if self.items else 0.0

    def by_service(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in self.lines:
            totals[line.service] = totals.get(line.service, 0.0) + line.cost
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "items": self.items,
            "total_usd": self.total,
            "per_million_items_usd": self.per_million_items,
            "by_service_usd": self.by_service(),
            "lines": [asdict(line) for line in self.lines],
        }


# --------------------------------------------------------------------------- building blocks


def deliveries_per_message(retry_rate: float) -> float:
    """Expected receives of one message when each fails independently with `retry_rate`
    (geometric; the DLQ cap is ignored, which overestimates slightly)."""
    return 1.0 / (1.0 - retry_rate)


def sqs(quantity: float, what: str, p: Prices) -> Line:
    return Line("SQS", what, quantity, "requests", quantity * p.sqs_per_million_requests / 1e6)


def lambda_lines(name: str, invocations: float, seconds: float, memory_mb: int, p: Prices) -> list[Line]:
    gb_seconds = invocations * seconds * memory_mb / 1024
    return [
        Line(
            "Lambda",
            f"{name} requests",
            invocations,
            "requests",
            invocations * p.lambda_per_million_requests / 1e6,
        ),
        Line(
            "Lambda",
            f"{name} duration ({memory_mb} MB x {seconds:.2f} s, arm64)",
            gb_seconds,
            "GB-s",
            gb_seconds * p.lambda_arm64_per_gb_second,
        ),
    ]


def s3_put(quantity: float, what: str, p: Prices) -> Line:
    return Line("S3", what, quantity, "PUT", quantity * p.s3_put_per_thousand / 1e3)


def s3_get(quantity: float, what: str, p: Prices) -> Line:
    return Line("S3", what, quantity, "GET", quantity * p.s3_get_per_thousand / 1e3)


def dynamodb_write(units: float, what: str, p: Prices) -> Line:
    return Line("DynamoDB", what, units, "write units", units * p.dynamodb_per_million_write_units / 1e6)


def dynamodb_read(units: float, what: str, p: Prices) -> Line:
    return Line("DynamoDB", what, units, "read units", units * p.dynamodb_per_million_read_units / 1e6)


def ledger_lines(w: Workload, deliveries: float, p: Prices) -> list[Line]:
    """The job ledger: every delivery reads its item's row (the batch's BatchGetItem, eventually
    consistent: half a unit) and writes it (one unit: a row is under 1 KB); the ledger function
    reads the rows' changes from the stream (free for a Lambda trigger) and writes a delta row
    and reads the job's rows once per batch of changes; item rows are stored until their TTL."""
    changes = deliveries
    batches = math.ceil(changes / w.ledger_batch) * w.jobs
    stored_gb_months = w.items * w.ledger_item_row_bytes / 1e9 * w.ledger_ttl_days / 30
    return [
        dynamodb_read(deliveries * 0.5, "ledger: read the batch's item rows (BatchGetItem)", p),
        dynamodb_write(deliveries, "ledger: one conditional Put of an item's row per delivery", p),
        dynamodb_write(batches, "ledger: a delta row per batch of changes (ledger function)", p),
        dynamodb_read(batches, "ledger: the job's rows, read per batch of changes", p),
        *lambda_lines("ledger function", batches, 0.3, 512, p),
        Line(
            "DynamoDB",
            f"ledger: item rows stored {w.ledger_ttl_days} days",
            stored_gb_months,
            "GB-month",
            stored_gb_months * p.dynamodb_per_gb_month,
        ),
    ]


def rate_budget_lines(calls: float, w: Workload, p: Prices) -> list[Line]:
    """The rate budget's row: a strongly consistent GetItem (one read unit) and a conditional
    PutItem (one write unit: the row is under 1 KB) per take of tokens."""
    if not w.calls_per_take:
        return []
    takes = calls / w.calls_per_take
    return [
        dynamodb_read(takes, f"rate budget: GetItem per take ({w.calls_per_take:g} calls a take)", p),
        dynamodb_write(takes, "rate budget: conditional PutItem per take", p),
    ]


def _worker_seconds(w: Workload) -> float:
    """A batch's items are fetched `fetch_concurrency` at a time."""
    rounds = math.ceil(w.batch_size / w.fetch_concurrency)
    return (rounds * w.avg_latency_ms + w.invocation_overhead_ms) / 1000


def worker_gb_seconds_per_item(w: Workload) -> float:
    return _worker_seconds(w) * w.worker_memory_mb / 1024 / w.batch_size


def _output_lines(w: Workload, p: Prices) -> list[Line]:
    records = w.items * w.records_per_item
    return [
        s3_put(records, "one object per record", p),
        s3_put(3 * w.jobs, "manifest (start, end) + rejects.csv per job", p),
        s3_get(records * w.query_reads_per_record, "reading every record once (Athena/DuckDB)", p),
    ]


# --------------------------------------------------------------------------- the two designs


def trawl_estimate(w: Workload, p: Prices | None = None) -> Estimate:
    """S3 -> producer Lambda -> SQS (batches of 10) -> worker Lambdas -> S3."""
    p = p or Prices()
    messages = w.items * (1 + w.continuations_per_item)
    deliveries = messages * deliveries_per_message(w.retry_rate)
    invocations = math.ceil(deliveries / w.batch_size)
    producer_s = w.items / w.producer_items_per_second
    # a producer invocation checkpoints and continues before its 900 s timeout (60 s margin)
    producer_invocations = max(w.jobs, math.ceil(producer_s / 840))
    lines = [
        sqs(math.ceil(w.items / 10), "SendMessageBatch (10 items a request)", p),
        sqs(w.items * w.continuations_per_item, "SendMessage for continuation pages", p),
        sqs(invocations, "ReceiveMessage (one per worker batch)", p),
        sqs(invocations, "DeleteMessageBatch (successes of a batch)", p),
        sqs(deliveries - messages, "ChangeMessageVisibility (backoff per retried delivery)", p),
        *lambda_lines(
            "producer", producer_invocations, producer_s / producer_invocations, w.producer_memory_mb, p
        ),
        *lambda_lines("worker", invocations, _worker_seconds(w), w.worker_memory_mb, p),
        s3_get(producer_invocations, "producer streams the input CSV", p),
        s3_put(producer_invocations, "producer checkpoint per invocation", p),
        *_output_lines(w, p),
        *ledger_lines(w, deliveries, p),
        *rate_budget_lines(deliveries, w, p),
    ]
    return Estimate("trawl: SQS fan-out + Lambda + ledger", w.items, tuple(lines))


def step_functions_estimate(w: Workload, p: Prices | None = None, express: bool = False) -> Estimate:
    """The same job as a Step Functions Distributed Map: ItemReader over the CSV, ItemBatcher of
    `sfn_items_per_child`, one child workflow per batch running one Lambda Task with Retry.
    Without per-item partial failures a child retries its whole batch when any item fails."""
    p = p or Prices()
    k = w.sfn_items_per_child
    children = math.ceil(w.items * (1 + w.continuations_per_item) / k)
    attempts = 1.0 / (1.0 - w.retry_rate) ** k  # a Task attempt succeeds only if all k items do
    invocations = children * attempts
    seconds = _worker_seconds(w)
    parent = 3 * w.jobs  # start, the Map state, the end
    lines = [
        Line(
            "Step Functions",
            "parent transitions + 1 transition per child execution started (Distributed Map)",
            parent + children,
            "transitions",
            (parent + children) * p.sfn_standard_per_thousand_transitions / 1e3,
        ),
    ]
    if express:
        billed_s = math.ceil(seconds * attempts * 10) / 10  # per 100 ms
        gb_seconds = children * billed_s * w.sfn_express_memory_mb / 1024
        lines += [
            Line(
                "Step Functions",
                "Express child executions",
                children,
                "requests",
                children * p.sfn_express_per_million_requests / 1e6,
            ),
            Line(
                "Step Functions",
                f"Express child duration ({w.sfn_express_memory_mb} MB x {billed_s:.1f} s)",
                gb_seconds,
                "GB-s",
                gb_seconds * p.sfn_express_per_gb_second,
            ),
        ]
    else:
        lines.append(
            Line(
                "Step Functions",
                "Standard child transitions (the Task state, once per attempt)",
                invocations,
                "transitions",
                invocations * p.sfn_standard_per_thousand_transitions / 1e3,
            )
        )
    lines += [
        *lambda_lines("worker", invocations, seconds, w.worker_memory_mb, p),
        s3_get(w.jobs, "ItemReader reads the input CSV", p),
        *_output_lines(w, p),
    ]
    kind = "Express" if express else "Standard"
    return Estimate(
        f"Step Functions Distributed Map ({kind} children, {k} item(s) per child)", w.items, tuple(lines)
    )


def compare(w: Workload, p: Prices | None = None) -> list[Estimate]:
    """trawl next to Distributed Map with Standard and Express children, one item per child
    and batched like trawl's SQS batches (ItemBatcher = WorkerBatchSize)."""
    p = p or Prices()
    batched = Workload(**{**asdict(w), "sfn_items_per_child": w.batch_size})
    return [
        trawl_estimate(w, p),
        step_functions_estimate(w, p),
        step_functions_estimate(batched, p),
        step_functions_estimate(w, p, express=True),
        step_functions_estimate(batched, p, express=True),
    ]
