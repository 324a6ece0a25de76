"""Processes one SQS batch: every item concurrently, and the one place that decides what each
outcome means for the queue (docs/contract.md, "Failure semantics"):
- fetched            -> records written, message deleted (not reported)
- Permanent          -> a record with that status written, message deleted
- Retryable          -> reported in batchItemFailures, visibility extended with backoff + jitter
- storing failed     -> (S3 PutObject, or SQS for a follow-up page) reported like Retryable
- anything unforeseen-> that item's retryable failure, logged with its traceback
- malformed message  -> reported (so it is retried and dead-lettered, never dropped)
One item's failure, of whatever kind, never fails the rest of its batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from models import OutputRecord, WorkItem
from models.ledger import SETTLED, Delivery
from workers.fetchers import Fetched, Fetcher, Found
from workers.ledger import Ledger, Outcome, Row
from workers.output import RecordWriter, field_counts
from workers.ratelimit import RateLimiter
from workers.settings import WorkerSettings
from workers.upstream import Permanent, Retryable
from workers.upstream.http import Budget

logger = Logger(service="trawl", child=True)
METRICS_NAMESPACE = "trawl"
# Per invocation, published as items_<name>: items ok, permanent, retried, dead-lettered, items
# whose record has fields left null because the upstream's value did not parse, and items not
# fetched because the ledger holds them settled already (a duplicate delivery). Dimensions:
# platform, stack (the stack's name: two stacks in one account never mix) and service.
METRICS = ("ok", "permanent", "retried", "dead_lettered", "fields_unparsed", "already_settled")


@dataclass
class BatchDeps:
    settings: WorkerSettings
    fetchers: dict[str, Fetcher]  # kind -> fetcher for this worker's platform
    writer: RecordWriter
    sqs: Any
    ledger: Ledger | None = None  # None only where no stack is behind the worker (benchmarks)
    limiter: RateLimiter | None = None  # the API key's shared rate budget, when it has a limit


@dataclass
class _Invocation:
    deps: BatchDeps
    budget: Budget
    fetching: asyncio.Semaphore  # bounds the items of the batch fetched at once
    warned: set[str] = field(default_factory=set)  # setup problems already logged this invocation
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    known: dict[tuple[str, str], Row] = field(default_factory=dict)  # the ledger's rows, read first


def backoff_seconds(receive_count: int, retry_after: float | None, base: int, cap: int) -> int:
    """Exponential backoff (capped) with jitter between half and all of it, never shorter than
    the upstream's Retry-After, never longer than SQS's 12-hour visibility maximum."""
    exponential = min(cap, base * 2 ** max(0, receive_count - 1))
    delay = random.uniform(exponential / 2, exponential)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return int(min(delay, 43_200))


async def process_batch(
    event: dict[str, Any], remaining_ms: Callable[[], int], deps: BatchDeps
) -> dict[str, Any]:
    records = SqsModel.model_validate(event).Records
    s = deps.settings
    budget = Budget(remaining_ms, s.deadline_margin_ms, s.read_timeout_s, deps.limiter)
    run = _Invocation(deps, budget, asyncio.Semaphore(s.fetch_concurrency))
    items = {r.messageId: _item(r) for r in records}
    run.known = await _rows(run, [i for i in items.values() if i is not None])
    results = await asyncio.gather(*(_process(run, record, items[record.messageId]) for record in records))
    failures = [{"itemIdentifier": r.messageId} for r, ok in zip(records, results, strict=True) if not ok]
    logger.info("batch done", extra={"size": len(records), "failed": len(failures), **run.counts})
    _publish(s.platform, s.stack_name, run.counts)
    return {"batchItemFailures": failures}


def _item(record: SqsRecordModel) -> WorkItem | None:
    try:
        return WorkItem.model_validate_json(str(record.body))
    except ValidationError as exc:
        # Not deleted, so it is retried and dead-lettered, never dropped; the ledger's
        # reconcile pass finds it in the DLQ.
        logger.error("malformed message", message_id=record.messageId, errors=exc.error_count())
        return None


async def _rows(run: _Invocation, items: list[WorkItem]) -> dict[tuple[str, str], Row]:
    """What the ledger holds for the items of the batch. A settled one is not fetched again (a
    duplicate delivery, or a redelivery after the record was written). Without an answer from
    the ledger every item is fetched: records are idempotent."""
    if run.deps.ledger is None or not items:
        return {}
    try:
        return await asyncio.to_thread(run.deps.ledger.rows, [(i.job_id, i.item_key) for i in items])
    except (BotoCoreError, ClientError) as exc:
        logger.warning("could not read the ledger; fetching every item", extra={"error": _aws_error(exc)})
        return {}


def _publish(platform: str, stack: str, counts: dict[str, int]) -> None:
    """CloudWatch metrics (EMF) per invocation: items_<name> for every one of METRICS, by
    platform and stack (the stack's dashboard reads them with these dimensions).
    EphemeralMetrics keeps no state between calls, so concurrent local containers can't mix them.
    Metrics are never worth failing a batch for: a problem here is logged, not raised."""
    try:
        metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE, service="trawl")
        metrics.add_dimension(name="platform", value=platform)
        metrics.add_dimension(name="stack", value=stack)
        for name, value in counts.items():
            metrics.add_metric(name=f"items_{name}", unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()
    except Exception as exc:
        logger.warning("could not publish metrics", extra={"error": f"{type(exc).__name__}: {exc}"})


@dataclass(frozen=True)
class _Delivery:
    record: SqsRecordModel
    item: WorkItem

    @property
    def receives(self) -> int:
        return int(self.record.attributes.ApproximateReceiveCount)

    @property
    def log(self) -> dict[str, str]:
        return {"job_id": self.item.job_id, "item_key": self.item.item_key, "platform": self.item.platform}

    @property
    def ledger_delivery(self) -> Delivery:
        return Delivery(self.record.messageId, self.receives)


async def _process(run: _Invocation, record: SqsRecordModel, item: WorkItem | None) -> bool:
    """True when the message may be deleted."""
    if item is None:
        return False
    delivery = _Delivery(record, item)
    fetcher = run.deps.fetchers.get(item.kind)
    if fetcher is None or item.platform != run.deps.settings.platform:
        logger.error("message for another worker", extra={"kind": item.kind, **delivery.log})
        return False
    if _done_before(item, run.known.get((item.job_id, item.item_key), {})):
        run.counts["already_settled"] += 1
        return True
    try:
        return await _fetch_and_store(run, delivery, fetcher)
    except Exception as exc:
        # A bug, or a library failing in a way nobody foresaw: still this item's trouble alone.
        # It is retried with backoff like any retryable failure; the rest of the batch goes on.
        logger.exception("unexpected failure; the item will be retried", extra=delivery.log)
        failure = Retryable(f"unexpected {type(exc).__name__}: {exc}", reason="unexpected")
        await _retry_later(run, delivery, failure, logged=True)
        return False


async def _fetch_and_store(run: _Invocation, delivery: _Delivery, fetcher: Fetcher) -> bool:
    item = delivery.item
    calls = run.budget.for_item()
    try:
        async with run.fetching:
            fetched = await fetcher.fetch(item, calls)
    except Permanent as exc:
        outcome = Outcome(
            exc.status, reason=exc.status, detail=str(exc), records=1, page=_page(item), **_calls(calls)
        )
        storing = _write(run, item, [], status=exc.status, detail=str(exc))
        return await _store(run, delivery, storing, outcome, "permanent")
    except Retryable as exc:
        await _retry_later(run, delivery, exc, calls=calls)
        return False
    if fetched.unparsed:
        run.counts["fields_unparsed"] += 1
        logger.warning(
            "upstream fields did not parse; left null",
            extra={"fields": sorted(set(fetched.unparsed)), **delivery.log},
        )
    # An account's videos settle with its last page; until then it stays pending.
    status = fetched.records[0].status if len(fetched.records) == 1 and item.kind != "videos" else "ok"
    reason = None if status == "ok" else status  # a private account: permanent, with its data
    outcome = Outcome(
        status if fetched.last_page else "pending",
        reason=reason,
        records=len(fetched.records),
        page=_page(item),
        field_counts=field_counts(f.data for f in fetched.records if f.status == "ok"),
        **_calls(calls),
    )
    return await _store(run, delivery, _write_found(run, item, fetched), outcome, _counted(status))


def _calls(calls: Budget | None) -> dict[str, Any]:
    """The upstream calls a delivery made, and how many were answered 429/503."""
    return {"calls": calls.calls, "throttled": calls.throttled} if calls is not None else {}


def _done_before(item: WorkItem, row: Row) -> bool:
    """The ledger says this message's work is done: the item is settled, or (tiktok/videos) the
    pages from this message's first on were written and counted already."""
    if row.get("outcome") in SETTLED:
        return True
    return item.kind == "videos" and "page_from" in row and int(row["page_from"]) >= item.page


def _page(item: WorkItem) -> int | None:
    """For tiktok/videos, which page the delivery started at (so each page's records are
    counted once); other kinds write their one record with the outcome itself."""
    return item.page if item.kind == "videos" else None


def _counted(status: str) -> str:
    return "ok" if status == "ok" else "permanent"


async def _store(
    run: _Invocation, delivery: _Delivery, storing: Awaitable[None], outcome: Outcome, counted: str
) -> bool:
    """Writing what was fetched, then its outcome in the ledger, is the last step before the
    message may go. If S3, SQS (a follow-up page) or the ledger fails, only this item is handed
    back, with backoff; the rest of the batch is unaffected. Its objects are rewritten under the
    same keys when it comes back."""
    try:
        await storing
        await _record(run, delivery, outcome)
    except (BotoCoreError, ClientError) as exc:
        failure = Retryable(f"could not store the result: {_aws_error(exc)}", reason="storage")
        await _retry_later(run, delivery, failure)
        return False
    run.counts[counted] += 1
    return True


async def _record(run: _Invocation, delivery: _Delivery, outcome: Outcome) -> None:
    ledger = run.deps.ledger
    if ledger is None:
        return
    item = delivery.item
    old = run.known.get((item.job_id, item.item_key))
    await asyncio.to_thread(ledger.record, item.job_id, item.item_key, delivery.ledger_delivery, outcome, old)


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code', '?')} {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


async def _write_found(run: _Invocation, item: WorkItem, fetched: Fetched) -> None:
    await _write(run, item, fetched.records)
    if fetched.follow_up is not None:
        body = fetched.follow_up.model_dump_json()
        await asyncio.to_thread(
            run.deps.sqs.send_message,
            QueueUrl=run.deps.settings.queue_url,
            MessageBody=body,
            MessageGroupId=item.job_id,  # the job's fair share, as the producer's messages
        )


async def _write(
    run: _Invocation, item: WorkItem, found: list[Found], status: str | None = None, detail: str | None = None
) -> None:
    now = dt.datetime.now(dt.UTC)
    common = {
        "job_id": item.job_id,
        "platform": item.platform,
        "kind": item.kind,
        "target": item.target,
        "fetched_at": now,
        "source": item.source,
        "context": item.context,
    }
    if status is not None:
        records = [OutputRecord(item_key=item.item_key, status=status, detail=detail, **common)]
    else:
        records = [
            OutputRecord(item_key=f.item_key, status=f.status, data=f.data, detail=_unparsed(f), **common)
            for f in found
        ]
    job_date = item.job_date.isoformat()
    await asyncio.gather(*(asyncio.to_thread(run.deps.writer.put, r, job_date) for r in records))


def _unparsed(found: Found) -> str | None:
    if not found.unparsed:
        return None
    return f"left null because the upstream value did not parse: {', '.join(sorted(set(found.unparsed)))}"


# Failures that say the setup is wrong, not the item: said once per invocation, loudly.
_SETUP_PROBLEMS = {
    "bad_credentials": "upstream rejected the API key; check the key in SSM/Secrets Manager",
    "configuration": "upstream answer is not the API's own: a configuration problem (check the URL)",
}


async def _retry_later(
    run: _Invocation, delivery: _Delivery, exc: Retryable, logged: bool = False, calls: Budget | None = None
) -> None:
    run.counts["retried"] += 1
    log = delivery.log
    problem = _SETUP_PROBLEMS.get(exc.reason)
    if problem is not None and exc.reason not in run.warned:
        run.warned.add(exc.reason)
        logger.error(problem, reason=str(exc))
    if not logged:
        logger.warning(
            "retryable failure",
            extra={"reason": exc.reason, "detail": str(exc), "error": type(exc).__name__, **log},
        )
    s = run.deps.settings
    receives = delivery.receives
    last = receives >= s.max_receive_count
    if last:
        run.counts["dead_lettered"] += 1
        logger.error("item goes to the dead-letter queue", extra={"receives": receives, **log})
    outcome = Outcome(
        "dead_lettered" if last else "pending", reason=exc.reason, detail=str(exc), **_calls(calls)
    )
    try:
        await _record(run, delivery, outcome)
    except (BotoCoreError, ClientError) as error:
        # The item is retried all the same; only this failure's reason goes uncounted.
        logger.warning(
            "could not record the failure in the ledger", extra={"error": _aws_error(error), **log}
        )
    # After the last receive there is nothing to wait for: the next receive moves the message
    # to the DLQ, where the ledger already says it is.
    delay = 0 if last else backoff_seconds(receives, exc.retry_after, s.retry_base_s, s.retry_max_s)
    try:
        await asyncio.to_thread(
            run.deps.sqs.change_message_visibility,
            QueueUrl=s.queue_url,
            ReceiptHandle=delivery.record.receiptHandle,
            VisibilityTimeout=delay,
        )
    except Exception as error:
        logger.warning("could not extend visibility", extra={"error": type(error).__name__, **log})
