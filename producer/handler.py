"""Producer Lambda: S3 ObjectCreated event (or its own continuation or run event) -> run_job;
the watch schedule's firing -> one run event per watch list."""

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
from pydantic import BaseModel, Field, TypeAdapter

from models import ObjectRef
from models.runtime import client_factory
from producer import watch
from producer.job import JobRequest, ProducerDeps, job_id_for, run_job
from producer.ledger import JobRows
from producer.settings import ProducerSettings
from producer.store import JobStore

logger = Logger(service="trawl")


class _Continued(BaseModel):
    bucket: str
    key: str
    etag: str
    run: str | None = None


class ContinuationEvent(BaseModel):
    """What the producer sends itself to go on with a job in a fresh invocation."""

    trawl_continuation: _Continued


class _Run(BaseModel):
    bucket: str
    key: str
    etag: str
    run: str = Field(min_length=1)
    job_date: dt.date | None = None
    watch: str | None = None
    rerun_of: str | None = None


class RunEvent(BaseModel):
    """A job of an object that is not a new upload: a re-run (`trawl rerun`), or one watch
    list's firing, as the producer sends it to itself."""

    trawl_run: _Run


class _Firing(BaseModel):
    # EventBridge Scheduler's <aws.scheduler.scheduled-time>: when the firing was due.
    scheduled_time: dt.datetime
    name: str | None = None  # `trawl watch run-now NAME`: that list only
    again: str | None = None  # a nonce: `--again`, another job the same day


class WatchFiring(BaseModel):
    """The watch schedule's firing (its target's Input), or `trawl watch run-now`."""

    trawl_watch: _Firing


# What invokes the producer: S3's notification of an upload, its own continuation or run, or
# the watch schedule. A replay (`trawl replay`) invokes it again with one of these, as Lambda
# received it.
ProducerEvent: TypeAdapter[S3Model | ContinuationEvent | RunEvent | WatchFiring] = TypeAdapter(
    S3Model | ContinuationEvent | RunEvent | WatchFiring
)


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


def dispatch_watch(firing: _Firing, deps: ProducerDeps) -> list[dict[str, Any]]:
    """One `trawl_run` invocation per watch list (not paused, or the one named), each its own
    job dated by the scheduled time. Sent, not run here, so each list has its own invocation,
    retries and failure record. Dispatching twice (a retry of this event) sends the same jobs."""
    settings = deps.settings
    date = watch.fire_date(firing.scheduled_time, settings.watch_timezone)
    run = watch.firing_run(date, firing.again)
    lists = deps.store.watch_lists()
    if firing.name is not None:
        lists = [w for w in lists if w.name == firing.name]
        if not lists:
            # Retrying cannot make it appear (`trawl watch run-now` checks the name first).
            logger.error("no watch list of that name under watch/", watch=firing.name)
    sent = []
    for wl in lists:
        if wl.paused and firing.name is None:
            logger.info("watch list paused: not fired", watch=wl.name)
            continue
        job_id = job_id_for(wl.ref(settings.data_bucket), run)
        _warn_if_previous_runs(deps, wl.name, job_id)
        deps.continuer.continue_job(watch.run_event(settings.data_bucket, wl, run, date))
        sent.append({"watch": wl.name, "job_id": job_id, "job_date": date.isoformat()})
    logger.info("watch lists fired", lists=len(sent), job_date=date.isoformat())
    return sent


def _warn_if_previous_runs(deps: ProducerDeps, name: str, job_id: str) -> None:
    if deps.jobs is None:
        return
    try:
        previous = deps.jobs.last_watch_job(name)
        if previous and previous["job_id"] != job_id and deps.jobs.still_running(previous):
            logger.warning(
                "the watch list's previous job still runs; the new one starts anyway",
                watch=name,
                previous_job_id=previous["job_id"],
                job_id=job_id,
            )
    except Exception:  # a warning is never worth failing the firing for
        logger.exception("could not look up the watch list's previous job", watch=name)


def requests_from(event: Mapping[str, Any], request_id: str) -> list[JobRequest]:
    """The jobs an event asks for (none for a watch firing, which only sends run events)."""
    return _requests(ProducerEvent.validate_python(event), request_id)


def _requests(
    parsed: S3Model | ContinuationEvent | RunEvent | WatchFiring, request_id: str
) -> list[JobRequest]:
    now = dt.datetime.now(dt.UTC)
    if isinstance(parsed, ContinuationEvent):
        c = parsed.trawl_continuation
        ref = ObjectRef(bucket=c.bucket, key=c.key, etag=c.etag)
        return [JobRequest(source=ref, event_time=now, request_id=request_id, continuation=True, run=c.run)]
    if isinstance(parsed, RunEvent):
        r = parsed.trawl_run
        ref = ObjectRef(bucket=r.bucket, key=r.key, etag=r.etag)
        request = JobRequest(
            source=ref,
            event_time=now,
            request_id=request_id,
            run=r.run,
            job_date=r.job_date,
            watch=r.watch,
            rerun_of=r.rerun_of,
        )
        return [request]
    if isinstance(parsed, WatchFiring):
        return []
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
    parsed = ProducerEvent.validate_python(event)
    if isinstance(parsed, WatchFiring):
        return {"fired": dispatch_watch(parsed.trawl_watch, deps)}
    jobs = []
    for request in _requests(parsed, context.aws_request_id):
        logger.append_keys(input_key=request.source.key, job_id=request.job_id)
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
