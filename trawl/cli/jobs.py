"""Commands on any stack's jobs: status, redrive, replay."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from trawl.cli.common import (
    EndpointOpt,
    JsonOpt,
    StackOpt,
    app,
    console,
    out,
    require_stack,
)
from trawl.cli.render import (
    print_move_tasks,
    print_recent,
    render_summary,
)
from trawl.stack.ops import dead_lettered_items, job_status, recent_jobs, redrive, replay


@app.command()
def status(
    job: Annotated[str | None, typer.Argument(help="A job id; without it, the recent jobs.")] = None,
    as_json: JsonOpt = False,
    items: Annotated[
        bool, typer.Option("--items", help="Also list the job's dead-lettered and stale items, with why.")
    ] = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """A job's state and counts, from its manifest and the job ledger (two requests, whatever the
    job's size). Exit code 0 when done, 1 when it failed or items are dead-lettered, 3 while
    running or retrying."""
    target = require_stack(stack, endpoint_url)
    if job is None:
        print_recent(recent_jobs(target), as_json)
        return
    try:
        found = job_status(target, job)
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    needing = dead_lettered_items(target, job) if items else []
    if as_json:
        payload = found.to_dict() | ({"items": needing} if items else {})
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        render_summary(found)
        for item in needing:
            out.print(f"    {item['item_key']}  {item['outcome']}  {item['reason']}: {item['error']}")
    raise typer.Exit({"done": 0, "failed": 1}.get(found.state, 3))


@app.command("redrive")
def redrive_command(
    platform: Annotated[str, typer.Argument(help="tiktok, tokopedia, shopee or lazada")],
    job: Annotated[str | None, typer.Option("--job", help="Only this job's messages.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many messages.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would move; move nothing.")] = False,
    show_status: Annotated[
        bool, typer.Option("--status", help="How the platform's StartMessageMoveTask tasks are doing.")
    ] = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Move dead-lettered messages back to the platform's work queue. What there is to move is
    read from the job ledger, never by receiving the DLQ."""
    target = require_stack(stack, endpoint_url)
    if platform not in target.platforms:
        raise typer.BadParameter(
            f"'{platform}' is not one of {', '.join(target.platforms)}", param_hint="PLATFORM"
        )
    if show_status:
        print_move_tasks(target, platform)
        return
    with Progress(TextColumn("re-driving"), BarColumn(), MofNCompleteColumn(), console=console) as bar:
        task = bar.add_task("redrive", total=None)
        result = redrive(
            target,
            platform,
            job,
            limit,
            dry_run,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    if result.note:
        console.print(f"[yellow]{result.note}[/]")
    if dry_run:
        for job_id, count in sorted((result.by_job or {}).items()):
            out.print(f"  job {job_id}: {count} dead-lettered")
        out.print(f"would move {result.matched} of {result.left} messages in the {platform} DLQ")
    elif result.task_handle is not None:
        out.print(
            f"started StartMessageMoveTask {result.task_handle}: SQS moves the {result.left} messages itself;"
            f" follow it with `trawl redrive {platform} --status`"
        )
    else:
        out.print(
            f"moved {result.moved} messages with {result.method}; {result.left} left in the {platform} DLQ"
        )
        if job is not None and result.moved < result.matched:
            console.print(
                f"[yellow]the ledger holds {result.matched} of job {job}'s items as dead-lettered; "
                f"{result.matched - result.moved} were not (yet) in the DLQ[/]"
            )


@app.command("replay")
def replay_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be replayed; replay nothing.")
    ] = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Invoke the producer again with every event whose retries ran out (its failure queue).
    Each job resumes from its last checkpoint; fix what made it fail first."""
    target = require_stack(stack, endpoint_url)
    with console.status("reading the producer's failure queue"):
        result = replay(target, dry_run=dry_run)
    for event in result.found:
        out.print(
            f"  {event.input_key}  (request {event.request_id or '?'}): {event.error or 'no error recorded'}"
        )
    if dry_run:
        out.print(f"would replay {len(result.found)} producer events")
    else:
        out.print(f"replayed {result.replayed} producer events; follow each job with `trawl status`")
