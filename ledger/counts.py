"""Adds a batch's changes (ledger/changes.py) to the jobs' counter rows exactly once.

Lambda hands this function the stream's records in batches, one shard at a time and in order,
and retries a failed batch from the same first record. So each run of consecutive changes is
committed in one transaction together with a marker, keyed by the run's first sequence number,
that holds its last: a retried batch finds the marker and skips what it covers, and two
invocations racing on one batch cannot both commit it (the marker is written only if absent).

A job's counts are spread over a few counter rows, one picked at random per commit, so the
concurrent batches of a busy table (one per stream shard) seldom contend for one row; readers
sum them. Every commit writes each row it touches once, however many changes it carries."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger

from ledger.changes import Batch, Change
from models.ledger import count_key, expires_at

logger = Logger(service="trawl", child=True)

# TransactWriteItems takes at most 100 actions: a run's marker and 99 counter rows.
MAX_JOBS_PER_COMMIT = 99
# A marker outlives every retry of its batch: stream records are kept for 24 hours.
MARKER_TTL_DAYS = 2
CONFLICT_TRIES = 5


def _runs(changes: list[Change]) -> list[list[Change]]:
    """Consecutive runs of changes touching at most MAX_JOBS_PER_COMMIT jobs each."""
    runs: list[list[Change]] = []
    jobs: set[str] = set()
    for change in changes:
        if not runs or (change.job_id not in jobs and len(jobs) == MAX_JOBS_PER_COMMIT):
            runs.append([])
            jobs = set()
        runs[-1].append(change)
        jobs.add(change.job_id)
    return runs


class CountWriter:
    def __init__(self, dynamodb: Any, table: str, count_rows: int) -> None:
        self._db = dynamodb
        self._table = table
        self._rows = count_rows

    def apply(self, batch: Batch) -> int:
        """Commit every change not yet committed; how many were."""
        committed = 0
        for run in _runs(batch.changes):
            committed += self._commit(run)
        return committed

    def _marker(self, sequence: str) -> dict[str, Any]:
        return {"pk": {"S": f"BATCH#{sequence}"}, "sk": {"S": "BATCH"}}

    def _applied_through(self, sequence: str) -> int | None:
        found = self._db.get_item(TableName=self._table, Key=self._marker(sequence), ConsistentRead=True)
        last = found.get("Item", {}).get("last", {}).get("N")
        return int(last) if last is not None else None

    def _commit(self, run: list[Change]) -> int:
        conflicts = 0
        while run:
            applied = self._applied_through(run[0].sequence)
            if applied is not None:
                # Committed before (this batch is a retry): the rest, if any, starts at another
                # record, whose marker is looked for in turn.
                run = [change for change in run if int(change.sequence) > applied]
                continue
            try:
                self._transact(run)
            except self._db.exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    continue  # another invocation committed this run just now: skip what it covered
                conflicts += 1
                if "TransactionConflict" not in reasons or conflicts == CONFLICT_TRIES:
                    raise  # Lambda retries the batch, from its first record
                time.sleep(random.uniform(0.05, 0.2) * 2**conflicts)
                continue
            return len(run)
        return 0

    def _transact(self, run: list[Change]) -> None:
        totals: dict[str, Counter[str]] = {}
        for change in run:
            totals.setdefault(change.job_id, Counter()).update(change.delta)
        now = dt.datetime.now(dt.UTC)
        marker = self._marker(run[0].sequence) | {
            "last": {"N": run[-1].sequence},
            "expires_at": {"N": str(expires_at(now, MARKER_TTL_DAYS))},
        }
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": marker,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        row = str(random.randrange(self._rows))
        for job_id, delta in totals.items():
            names = {f"#c{i}": name for i, name in enumerate(delta)}
            values = {f":c{i}": {"N": str(amount)} for i, amount in enumerate(delta.values())}
            actions.append(
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": {k: {"S": v} for k, v in count_key(job_id, row).items()},
                        "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(delta))),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        self._db.transact_write_items(TransactItems=actions)
