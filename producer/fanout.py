"""Sends WorkItems to SQS in batches of 10 from a small thread pool. Entries SQS refuses are
retried; once a batch still fails, the fan-out stops (EnqueueFailed, with what SQS answered):
the job fails retryably and resumes from its last checkpoint, so nothing is dropped, and no
time is spent retrying the rest of the file against an SQS that refuses it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models import WorkItem

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

BATCH = 10
ATTEMPTS = 4


def _entry(entry_id: str, item: WorkItem) -> SendMessageBatchRequestEntryTypeDef:
    """One message. Its group is its job: on a standard queue SQS fair queues then keep one
    job's backlog from holding up another job's messages (docs/contract.md, "Fairness")."""
    return {"Id": entry_id, "MessageBody": item.model_dump_json(), "MessageGroupId": item.job_id}


@dataclass(frozen=True)
class Unsent:
    item: WorkItem
    reason: str


class EnqueueFailed(Exception):
    """SQS refused messages after every retry: not the file's fault, so the job is retried."""


class Fanout:
    """`add` buffers; every 10 items go out as one SendMessageBatch on a worker thread. At most
    `threads * 2` batches are in flight, so memory stays bounded however fast rows arrive."""

    def __init__(self, sqs: SQSClient, queue_url: str, threads: int = 8) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fanout")
        self._slots = threading.BoundedSemaphore(threads * 2)
        self._buffer: list[WorkItem] = []
        self._futures: set[Future[None]] = set()
        self._lock = threading.Lock()
        self.sent = 0
        self._unsent: list[Unsent] = []

    def add(self, item: WorkItem) -> None:
        """Queue one item; EnqueueFailed once SQS has refused a batch for good."""
        self.raise_if_refused()
        self._buffer.append(item)
        if len(self._buffer) == BATCH:
            self._submit()

    def raise_if_refused(self) -> None:
        with self._lock:
            unsent = self._unsent
        if unsent:
            raise EnqueueFailed(f"SQS refused {len(unsent)} messages after every retry: {unsent[0].reason}")

    def _submit(self) -> None:
        batch, self._buffer = self._buffer, []
        self._slots.acquire()
        future = self._pool.submit(self._send, batch)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        self._slots.release()
        with self._lock:
            self._futures.discard(future)

    def flush(self) -> None:
        """Wait until every added item is sent or recorded as unsent."""
        if self._buffer:
            self._submit()
        while True:
            with self._lock:
                pending = list(self._futures)
            if not pending:
                return
            for future in pending:
                future.result()

    def close(self) -> None:
        self.flush()
        self._pool.shutdown()

    def _send(self, batch: list[WorkItem]) -> None:
        entries = {str(i): item for i, item in enumerate(batch)}
        reasons: dict[str, str] = {}
        with self._lock:
            refused = bool(self._unsent)
        if refused:  # stopping: what is still queued is sent again when the job resumes
            reasons = dict.fromkeys(entries, "not sent: an earlier batch was refused")
        for attempt in range(0 if refused else ATTEMPTS):
            if attempt:
                time.sleep(0.1 * 2**attempt)
            try:
                response: Any = self._sqs.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[_entry(i, item) for i, item in entries.items()],
                )
            except Exception as exc:
                reasons = dict.fromkeys(entries, f"SendMessageBatch failed: {type(exc).__name__}: {exc}")
                continue
            failed = {
                f["Id"]: f"{f.get('Code', '?')}: {f.get('Message', '')}" for f in response.get("Failed", [])
            }
            self._count(len(entries) - len(failed))
            entries = {i: entries[i] for i in failed}
            reasons = failed
            if not entries:
                return
        with self._lock:
            self._unsent.extend(Unsent(item, reasons[i]) for i, item in entries.items())

    def _count(self, n: int) -> None:
        with self._lock:
            self.sent += n
