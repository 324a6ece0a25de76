"""Watch lists and re-runs on any stack: adding, listing, pausing and removing the CSVs under
watch/, firing them now, and fetching a finished job's input again as a new job. A firing or a
re-run reaches the producer as the schedule's (or its own) event, through Lambda's Invoke API,
so `trawl up`'s stand-in and AWS start the jobs the same way."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import pair_problem
from producer.csvstream import BadFile, RowReader, iter_lines, read_header
from producer.job import job_id_for
from producer.watch import (
    NAME,
    WatchList,
    fire_date,
    firing_run,
    last_job,
    list_watch_lists,
    watch_jobs,
    watch_key,
)
from trawl.stack import cron
from trawl.stack.describe import Stack
from trawl.stack.jobs import job_summary, load_manifest


class WatchError(ValueError):
    """What the user asked cannot be done, and why (the CLI prints it and exits 2)."""


@dataclass(frozen=True)
class WatchListView:
    name: str
    platform: str
    kind: str
    key: str
    items: int | None  # data rows, as added (or the last job's, for a list copied in by hand)
    paused: bool
    last_job_id: str | None
    last_state: str | None
    last_date: str | None
    next_run: dt.datetime | None


@dataclass(frozen=True)
class WatchSchedule:
    name: str
    expression: str
    timezone: str
    enabled: bool

    def next_run(self, after: dt.datetime | None = None) -> dt.datetime | None:
        """None when disabled, or for an expression trawl cannot evaluate (it still fires on AWS)."""
        if not self.enabled:
            return None
        try:
            return cron.parse(self.expression, self.timezone).next_after(after or dt.datetime.now(dt.UTC))
        except cron.ExpressionError:
            return None


def watch_schedule(stack: Stack) -> WatchSchedule | None:
    name = stack.outputs.get("WatchScheduleName")
    if name is None:
        return None
    try:
        found = stack.endpoint.client("scheduler").get_schedule(Name=name)
    except Exception:  # not created (an older stack), or no permission to read it
        return None
    return WatchSchedule(
        name,
        found["ScheduleExpression"],
        found.get("ScheduleExpressionTimezone", "UTC"),
        found["State"] == "ENABLED",
    )


def _lists(stack: Stack) -> list[WatchList]:
    return list_watch_lists(stack.endpoint.client("s3"), stack.bucket)


def find(stack: Stack, name: str) -> WatchList:
    for wl in _lists(stack):
        if wl.name == name:
            return wl
    raise WatchError(f"no watch list named '{name}' (see `trawl watch list`)")


def count_rows(path: Path, platform: str) -> int:
    """The file's data rows; BadFile (with what is wrong) when its header has no target column."""
    with path.open("rb") as handle:
        lines = iter_lines(handle)
        header = read_header(lines, platform)
        return sum(1 for _ in RowReader(lines, header.delimiter, header.data_offset, header.first_row))


def add(
    stack: Stack, path: Path, platform: str, kind: str, name: str | None = None
) -> tuple[WatchList, bool]:
    """Upload the list to watch/<platform>/<kind>/<name>.csv; True when it replaced one."""
    name = name or path.stem
    if not NAME.match(name):
        raise WatchError(f"watch list name '{name}': use letters, digits, '.', '_' and '-' (up to 100)")
    problem = pair_problem(platform, kind, f"watch list '{name}'")
    if problem:
        raise WatchError(problem)
    try:
        rows = count_rows(path, platform)
    except BadFile as exc:
        raise WatchError(f"{path}: {exc}") from exc
    if rows == 0:
        raise WatchError(f"{path}: the file has a header but no data rows")
    existing = [wl for wl in _lists(stack) if wl.name == name]
    other = [wl for wl in existing if (wl.platform, wl.kind) != (platform, kind)]
    if other:
        raise WatchError(
            f"a watch list named '{name}' exists for {other[0].platform}/{other[0].kind}: "
            "remove it first, or choose another --name"
        )
    key = watch_key(platform, kind, name)
    stack.endpoint.client("s3").upload_file(
        str(path), stack.bucket, key, ExtraArgs={"ContentType": "text/csv", "Metadata": {"items": str(rows)}}
    )
    return find(stack, name), bool(existing)


def views(stack: Stack) -> list[WatchListView]:
    """Every list with its last job and the schedule's next firing: a few requests per list."""
    schedule = watch_schedule(stack)
    next_run = schedule.next_run() if schedule else None
    s3, db = stack.endpoint.client("s3"), stack.endpoint.client("dynamodb")
    found = []
    for wl in _lists(stack):
        last = last_job(db, stack.ledger_table, wl.name)
        summary = job_summary(stack, str(last["job_id"])) if last else None
        items = s3.head_object(Bucket=stack.bucket, Key=wl.key).get("Metadata", {}).get("items")
        found.append(
            WatchListView(
                name=wl.name,
                platform=wl.platform,
                kind=wl.kind,
                key=wl.key,
                items=int(items) if items else (summary.rows if summary else None),
                paused=wl.paused,
                last_job_id=summary.job_id if summary else None,
                last_state=summary.state if summary else None,
                last_date=str(last.get("job_date")) if last else None,
                next_run=None if wl.paused else next_run,
            )
        )
    return found


def runs(stack: Stack, name: str, limit: int = 10) -> list[dict[str, Any]]:
    """The watch list's job rows, newest first."""
    return watch_jobs(stack.endpoint.client("dynamodb"), stack.ledger_table, name, limit)


def pause(stack: Stack, name: str) -> WatchList:
    wl = find(stack, name)
    marker = watch_key(wl.platform, wl.kind, wl.name, "paused")
    stack.endpoint.client("s3").put_object(Bucket=stack.bucket, Key=marker, Body=b"")
    return wl


def resume(stack: Stack, name: str) -> WatchList:
    wl = find(stack, name)
    stack.endpoint.client("s3").delete_object(
        Bucket=stack.bucket, Key=watch_key(wl.platform, wl.kind, wl.name, "paused")
    )
    return wl


def remove(stack: Stack, name: str) -> WatchList:
    """The list and its pause marker; its jobs and records stay."""
    wl = find(stack, name)
    s3 = stack.endpoint.client("s3")
    for key in (wl.key, watch_key(wl.platform, wl.kind, wl.name, "paused")):
        s3.delete_object(Bucket=stack.bucket, Key=key)
    return wl


def invoke_producer(stack: Stack, event: dict[str, Any]) -> None:
    stack.endpoint.client("lambda").invoke(
        FunctionName=stack.outputs["ProducerFunctionName"],
        InvocationType="Event",
        Payload=json.dumps(event).encode(),
    )


def _timezone(stack: Stack) -> str:
    schedule = watch_schedule(stack)
    return schedule.timezone if schedule else "UTC"


def run_now(stack: Stack, name: str | None = None, again: bool = False) -> list[tuple[WatchList, str]]:
    """Fire the watch schedule now (every list not paused, or the one named): the lists and
    their jobs' ids. Twice the same day is the same jobs, unless `again`."""
    lists = [find(stack, name)] if name else [wl for wl in _lists(stack) if not wl.paused]
    if not lists:
        raise WatchError("no watch list to fire: add one with `trawl watch add FILE --platform P --kind K`")
    now = dt.datetime.now(dt.UTC)
    nonce = f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}" if again else None
    run = firing_run(fire_date(now, _timezone(stack)), nonce)
    event = {"trawl_watch": {"scheduled_time": cron.scheduled_time_text(now), "name": name, "again": nonce}}
    invoke_producer(stack, event)
    return [(wl, job_id_for(wl.ref(stack.bucket), run)) for wl in lists]


def rerun_event(stack: Stack, job_id: str) -> tuple[dict[str, Any], str]:
    """The event that fetches a job's input again as a new job dated today, and that job's id;
    WatchError when the job is unknown or its input has changed since."""
    manifest = load_manifest(stack, job_id)
    if manifest is None:
        raise WatchError(f"no job {job_id} in stack {stack.name}")
    ref = manifest.input
    try:
        head = stack.endpoint.client("s3").head_object(Bucket=ref.bucket, Key=ref.key)
    except Exception as exc:
        raise WatchError(
            f"job {job_id}'s input s3://{ref.bucket}/{ref.key} is gone: upload it again"
        ) from exc
    if head["ETag"].strip('"') != ref.etag:
        raise WatchError(
            f"s3://{ref.bucket}/{ref.key} has changed since job {job_id} read it: "
            "run the new file (`trawl run FILE`), or upload the old one again"
        )
    now = dt.datetime.now(dt.UTC)
    run = f"rerun:{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    payload = {"bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "run": run, "rerun_of": job_id}
    return {"trawl_run": payload}, job_id_for(ref, run)


def rerun(stack: Stack, job_id: str) -> str:
    """Start the re-run on the stack; its job id."""
    event, new_id = rerun_event(stack, job_id)
    invoke_producer(stack, event)
    return new_id
