"""Producer Lambda: S3 ObjectCreated event (or its own continuation event) -> run_job."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser.models import S3Model
from pydantic import BaseModel, TypeAdapter

from models import ObjectRef
from models.runtime import client_factory
from producer.job import JobRequest, ProducerDeps, job_id_for, run_job
from producer.ledger import JobRows
from producer.settings import ProducerSettings
from producer.store import JobStore

logger = Logger(service="trawl")


class _Continued(BaseModel):
    bucket: str
    key: str
    etag: str


class ContinuationEvent(BaseModel):
    """What the producer sends itself to go on with a job in a fresh invocation."""

    trawl_continuation: _Continued


# What invokes the producer: S3's notification of an upload, or its own continuation. A replay
# (`trawl replay`) invokes it again with one of these, as Lambda received it.
ProducerEvent: TypeAdapter[S3Model | ContinuationEvent] = TypeAdapter(S3Model | ContinuationEvent)


class LambdaContinuer:
    """Continues a job in a fresh asynchronous invocation of this same function."""

    def __init__(self, lambda_client: Any, function_name: str) -> None:
        self._client = lambda_client
        self._function_name = function_name

    def continue_job(self, payload: dict[str, Any]) -> None:
        self._client.invoke(
            FunctionName=self._function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )


def build_deps(env: Mapping[str, str], continuer: Any = None) -> ProducerDeps:
    settings = ProducerSettings.from_env(env)
    client = client_factory(env)
    if continuer is None:
        continuer = LambdaContinuer(client("lambda"), env["AWS_LAMBDA_FUNCTION_NAME"])
    return ProducerDeps(
        settings=settings,
        store=JobStore(client("s3"), settings.data_bucket),
        sqs=client("sqs"),
        continuer=continuer,
        jobs=JobRows(client("dynamodb"), settings.ledger_table) if settings.ledger_table else None,
    )


def requests_from(event: Mapping[str, Any], request_id: str) -> list[JobRequest]:
    parsed = ProducerEvent.validate_python(event)
    if isinstance(parsed, ContinuationEvent):
        c = parsed.trawl_continuation
        ref = ObjectRef(bucket=c.bucket, key=c.key, etag=c.etag)
        now = dt.datetime.now(dt.UTC)
        return [JobRequest(source=ref, event_time=now, request_id=request_id, continuation=True)]
    requests = []
    for record in parsed.Records:
        uploaded = record.s3.object
        if uploaded is None:  # not an object's event (S3 sends ObjectCreated ones with it)
            continue
        ref = ObjectRef(
            bucket=record.s3.bucket.name,
            key=unquote_plus(uploaded.key),
            etag=(uploaded.eTag or "").strip('"'),
        )
        requests.append(JobRequest(source=ref, event_time=record.eventTime, request_id=request_id))
    return requests


def handle(event: Mapping[str, Any], context: Any, deps: ProducerDeps) -> dict[str, Any]:
    jobs = []
    for request in requests_from(event, context.aws_request_id):
        logger.append_keys(input_key=request.source.key, job_id=job_id_for(request.source))
        try:
            manifest = run_job(request, deps, context.get_remaining_time_in_millis)
        finally:
            logger.remove_keys(["input_key", "job_id"])
        if manifest is not None:
            jobs.append({"job_id": manifest.job_id, "status": manifest.status, "enqueued": manifest.enqueued})
    return {"jobs": jobs}


@lru_cache(maxsize=1)
def _deps() -> ProducerDeps:
    return build_deps(os.environ)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event, context, _deps())
