"""Adds a batch's changes (ledger/changes.py) to the jobs' counts exactly once.

Lambda hands this function the stream's records in batches, one shard at a time and in order,
and retries a failed batch from the same first record. So for each job, a run of consecutive
changes is written as one delta row, keyed by the run's first sequence number and holding its
last, and written only if absent: the row is its own proof of having been counted. A retried
batch finds it and counts only what lies after its last record; two invocations racing on one
batch cannot both write it. No row is written by two writers, and no transaction is needed.

Delta rows pile up with a long job, so once a job has FOLD_AT of them, a run of them is folded:
one fold row holds their sums and names the first and last delta it covers, and then the deltas
are deleted. Readers (ledger/view.py) count a delta only when no fold covers it, so a crash
between the two steps counts nothing twice, and a job's rows stay few: reading them stays one
request, however long the job runs."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger

from ledger.changes import Batch, Change
from models.ledger import counted_rows, delta_key, fold_key

logger = Logger(service="trawl", child=True)

FOLD_AT = 64
# A fold row holds a counter per outcome, reason and data field (a few dozen), and up to three
# per minute its deltas' changes were written in (m<minute>_ended/_ok/_throttled, ~64 bytes a
# minute). A job's minute counters are spread over its rows, each row holding the minutes of
# its own deltas, so a job that runs for hours adds tens of KB in all. One fold row would reach
# DynamoDB's 400 KB item limit only if its FOLD_MAX deltas spanned ~6,000 minutes (four days).
FOLD_MAX = 500


class CountWriter:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def apply(self, batch: Batch) -> int:
        """Write every job's run of changes not yet written; how many changes were."""
        runs: dict[str, list[Change]] = {}
        for change in batch.changes:
            runs.setdefault(change.job_id, []).append(change)
        return sum(self._commit(job_id, run) for job_id, run in runs.items())

    def _commit(self, job_id: str, run: list[Change]) -> int:
        while run:
            delta: Counter[str] = Counter()
            for change in run:
                delta.update(change.delta)
            item = {k: {"S": v} for k, v in delta_key(job_id, run[0].sequence).items()}
            item |= {"last": {"N": run[-1].sequence}}
            item |= {name: {"N": str(amount)} for name, amount in delta.items() if amount}
            try:
                self._db.put_item(
                    TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                # Counted before (this batch is a retry): what lies after that run, if anything,
                # starts at another record and is written under its own key.
                found = self._db.get_item(TableName=self._table, Key={k: item[k] for k in ("pk", "sk")})
                last = int(found["Item"]["last"]["N"])
                run = [change for change in run if int(change.sequence) > last]
                continue
            return len(run)
        return 0

    def fold(self, job_id: str, rows: list[dict[str, Any]]) -> bool:
        """Fold the job's oldest delta rows once it has FOLD_AT of them; `rows` as read
        (ledger/view.py). True when it folded."""
        deltas = [row for row in counted_rows(rows) if str(row["sk"]).startswith("DELTA#")]
        if len(deltas) < FOLD_AT:
            return False
        chosen = deltas[:FOLD_MAX]
        total: Counter[str] = Counter()
        for row in chosen:
            total.update({k: int(v) for k, v in row.items() if k not in ("pk", "sk", "last")})
        first, last = str(chosen[0]["sk"]), str(chosen[-1]["sk"])
        fold = {k: {"S": v} for k, v in fold_key(job_id, first).items()}
        fold |= {"last_delta": {"S": last}}
        fold |= {name: {"N": str(amount)} for name, amount in total.items() if amount}
        # Written before, by an invocation that died before its deletes: then finish them.
        with contextlib.suppress(self._db.exceptions.ConditionalCheckFailedException):
            self._db.put_item(
                TableName=self._table, Item=fold, ConditionExpression="attribute_not_exists(pk)"
            )
        for row in chosen:
            self._db.delete_item(
                TableName=self._table, Key={"pk": {"S": str(row["pk"])}, "sk": {"S": str(row["sk"])}}
            )
        logger.info("folded delta rows", job_id=job_id, rows=len(chosen))
        return True
