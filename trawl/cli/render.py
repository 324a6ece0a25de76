"""How jobs are printed: one renderer for a job's summary (run, demo and status print the same),
the recent jobs, move tasks and Job Finished events."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from trawl.cli.common import console, out
from trawl.stack.describe import Stack
from trawl.stack.ops import move_tasks
from trawl.stack.submit import JobSummary


def print_summaries(summaries: list[JobSummary], as_json: bool, many: bool) -> None:
    if as_json:
        payload = [s.to_dict() for s in summaries]
        typer.echo(json.dumps(payload if many else payload[0], indent=2))
        return
    for s in summaries:
        out.print()
        render_summary(s)


STATE_COLOURS = {"done": "green", "failed": "red"}


def render_summary(s: JobSummary) -> None:
    """One job, as `run`, `demo` and `status` print it. Items and records are kept apart: for
    tiktok/videos an item is an account, and its records are its videos."""
    colour = STATE_COLOURS.get(s.state, "yellow")
    # The job's state (done / running / retrying / failed), not the producer's manifest status: a
    # job is "enqueued" as soon as its rows are on the queue, long before its records are written.
    out.print(f"[bold]job {s.job_id}[/]  {s.platform}/{s.kind}  {s.input_key}  [{colour}]{s.state}[/]")
    if s.message:
        out.print(f"  [red]{s.message}[/]")
    out.print(f"  rows {s.rows} = enqueued {s.enqueued} + duplicates {s.duplicates} + rejected {s.rejected}")
    permanent = ", ".join(f"{status} {n}" for status, n in s.permanent_by_status.items())
    items = [
        f"ok {s.written_ok}",
        f"permanent {s.written_permanent}" + (f" ({permanent})" if permanent else ""),
        f"dead-lettered {s.dead_lettered}",
        *([f"stale {s.stale}"] if s.stale else []),
        f"in flight {s.in_flight}",
    ]
    noun = "accounts" if s.kind == "videos" else "items"
    out.print(f"  {noun}: " + " · ".join(items))
    what = "video records" if s.kind == "videos" else "records"
    out.print(f"  {what} written: {s.records}")
    if s.failure_reasons:
        out.print("  failure reasons: " + " · ".join(f"{r} {n}" for r, n in s.failure_reasons.items()))
    if s.calls:
        out.print(f"  upstream calls: {s.calls} · throttled (429/503) {s.throttled_calls}")
    if s.coverage:
        out.print(f"  field coverage: {coverage_line(s.coverage)}")
    if s.rate:
        r = s.rate
        allowed = f"allowed now {r['allowed_per_minute']:,}/min"
        if r["platform_allowed_per_minute"] < r["allowed_per_minute"]:
            allowed += f", {s.platform} {r['platform_allowed_per_minute']:,}/min (its website's limit)"
        out.print(f"  rate budget: {r['key']} key {r['limit_per_minute']:,}/min · {allowed}")
    data_dir = Path(s.data_dir) if s.data_dir else None
    if s.output_prefix:
        out.print(f"  output: {s.output_prefix}")
        if data_dir is not None:
            out.print(f"          copied to {data_dir / s.output_prefix.split('/', 3)[3]}")
    if s.rejected:
        where = (
            data_dir / "jobs" / s.job_id / "rejects.csv" if data_dir else f"s3 jobs/{s.job_id}/rejects.csv"
        )
        out.print(f"  rejects: {where}")


def coverage_line(coverage: dict[str, float]) -> str:
    """The fields some ok records lack a value for, emptiest first, and how many have it always.
    Shares are rounded down, so a field missing from one record in a thousand is not "100%"."""
    short = sorted((share, name) for name, share in coverage.items() if share < 1)
    full = len(coverage) - len(short)
    parts = [f"{name} {int(share * 100)}%" for share, name in short]
    if full:
        fields = f"{full} field" + ("s" if full > 1 else "")
        parts.append(f"the other {fields} 100%" if short else f"all {fields} 100%")
    return " · ".join(parts)


def show_finished(detail: dict[str, object]) -> None:
    """One line in `trawl up`'s log per `Job Finished` event."""
    colour = STATE_COLOURS.get(str(detail.get("state")), "yellow")
    reasons = detail.get("failure_reasons") or {}
    why = " · ".join(f"{r} {n}" for r, n in reasons.items()) if isinstance(reasons, dict) else ""
    out.print(
        f"job {detail.get('job_id')} finished [{colour}]{detail.get('state')}[/]: {detail.get('platform')}/"
        f"{detail.get('kind')} {detail.get('input_key')} · ok {detail.get('written_ok')} · permanent "
        f"{detail.get('written_permanent')} · dead-lettered {detail.get('dead_lettered')}"
        + (f" · reasons: {why}" if why else "")
    )


def print_recent(jobs: list[dict[str, object]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(jobs, indent=2, default=str))
        return
    if not jobs:
        out.print("no jobs yet")
        return
    # From the ledger's job rows: a job reads done or failed once all its items have settled.
    heading = ("job", "created (UTC)", "platform/kind", "state", "rows", "enqueued", "input")
    out.print("{:<16}  {:<16}  {:<17}  {:<8}  {:>7}  {:>8}  {}".format(*heading))
    for job in jobs:
        pair = f"{job.get('platform')}/{job.get('kind')}"
        state = str(job.get("finished_state") or job.get("producer"))
        if state == "enqueued":
            state = "running"  # every row is on the queue; its items are not all done
        created = str(job.get("created_at", ""))[:16].replace("T", " ")
        out.print(
            f"{job.get('job_id')!s:<16}  {created:<16}  {pair:<17}  {state:<8}"
            f"  {job.get('rows', 0)!s:>7}  {job.get('enqueued', 0)!s:>8}  {job.get('input_key')}"
        )
    out.print("one job's counts, its failure reasons and its dead-lettered items: trawl status JOB --items")


def print_move_tasks(target: Stack, platform: str) -> None:
    try:
        tasks = move_tasks(target, platform)
    except Exception as exc:
        console.print(f"[yellow]this endpoint does not list message move tasks ({type(exc).__name__})[/]")
        raise typer.Exit(2) from exc
    if not tasks:
        out.print(f"no message move tasks for the {platform} DLQ")
    for found in tasks:
        out.print(
            f"{found.get('TaskHandle', '-')}  {found.get('Status')}  moved "
            f"{found.get('ApproximateNumberOfMessagesMoved', 0)} of "
            f"{found.get('ApproximateNumberOfMessagesToMove', '?')}"
            + (f"  ({found['FailureReason']})" if found.get("FailureReason") else "")
        )
