"""Ledger Lambda: the ledger table's change stream -> the jobs' counts (exactly once) and the
`Job Finished` events; and, on its schedule, the reconcile pass."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel, EventBridgeModel
from pydantic import TypeAdapter

from ledger import changes
from ledger.counts import CountWriter
from ledger.finish import Finisher
from ledger.reconcile import Reconciler
from ledger.settings import LedgerSettings
from ledger.view import read_job
from models.runtime import client_factory

logger = Logger(service="trawl")


@dataclass
class LedgerDeps:
    settings: LedgerSettings
    dynamodb: Any
    counts: CountWriter
    finisher: Finisher
    reconciler: Reconciler


def build_deps(env: Mapping[str, str]) -> LedgerDeps:
    settings = LedgerSettings.from_env(env)
    client = client_factory(env)
    dynamodb = client("dynamodb")
    return LedgerDeps(
        settings=settings,
        dynamodb=dynamodb,
        counts=CountWriter(dynamodb, settings.table),
        finisher=Finisher(dynamodb, client("events"), settings.table, settings.stack_name),
        reconciler=Reconciler(settings, dynamodb, client("sqs"), client("s3")),
    )


# What invokes the ledger function: its table's stream, or its schedule (the reconcile pass).
LedgerEvent: TypeAdapter[DynamoDBStreamModel | EventBridgeModel] = TypeAdapter(
    DynamoDBStreamModel | EventBridgeModel
)


def handle(event: Mapping[str, Any], context: Any, deps: LedgerDeps) -> dict[str, Any]:
    parsed = LedgerEvent.validate_python(event)
    if isinstance(parsed, EventBridgeModel):
        # The schedule's own time, not the clock: a pass reads as of when it was due.
        result = deps.reconciler.run(parsed.time)
        announced = deps.finisher.check(result.unannounced, result.producer_states)
        return {"dead_lettered": result.dead_lettered, "stale": result.stale, "announced": len(announced)}
    batch = changes.read(parsed.Records)
    committed = deps.counts.apply(batch)
    try:
        for job_id in sorted(batch.jobs):
            view = read_job(deps.dynamodb, deps.settings.table, job_id)
            if view is not None:
                deps.counts.fold(job_id, view.rows)
                deps.finisher.announce(view)
    except Exception:
        # Never fail a batch whose counts are written (it would be read again, for nothing): the
        # reconcile pass announces what this missed, and the next batch folds.
        logger.exception("could not check the jobs for an end", extra={"jobs": len(batch.jobs)})
    return {"committed": committed, "jobs": len(batch.jobs)}


@lru_cache(maxsize=1)
def _deps() -> LedgerDeps:
    return build_deps(os.environ)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, _deps())
