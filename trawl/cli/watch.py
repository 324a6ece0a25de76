"""`trawl watch`: lists fetched on the stack's schedule (watch/<platform>/<kind>/<name>.csv)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from trawl.cli.common import EndpointOpt, JsonOpt, StackOpt, app, console, out, require_stack
from trawl.stack import watch as lists
from trawl.stack.watch import WatchError

watch_app = typer.Typer(
    no_args_is_help=True,
    help="Watch lists: CSVs under watch/<platform>/<kind>/ that the stack fetches on its schedule, "
    "one job per list per day.",
)
app.add_typer(watch_app, name="watch")

NameArg = Annotated[str, typer.Argument(help="The watch list's name (`trawl watch list`).")]
T = TypeVar("T")


def _checked(call: Callable[[], T]) -> T:
    try:
        return call()
    except WatchError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc


@watch_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The list's CSV.")],
    platform: Annotated[str, typer.Option(help="tiktok, tokopedia, shopee or lazada")],
    kind: Annotated[str, typer.Option(help="account, videos or product")],
    name: Annotated[str | None, typer.Option(help="The list's name (default: the file's name).")] = None,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Add (or replace) a watch list: the next firing fetches it. Its header is checked first."""
    target = require_stack(stack, endpoint_url)
    wl, replaced = _checked(lambda: lists.add(target, file, platform.lower(), kind.lower(), name))
    verb = "replaced" if replaced else "added"
    schedule = lists.watch_schedule(target)
    when = schedule.next_run() if schedule else None
    out.print(
        f"{verb} watch list [bold]{wl.name}[/] ({wl.platform}/{wl.kind}) at s3://{target.bucket}/{wl.key}; "
        + (f"next firing {when:%Y-%m-%d %H:%M} UTC" if when else "no firing scheduled")
        + f" (or now: `trawl watch run-now {wl.name}`)"
    )


@watch_app.command("list")
def list_(as_json: JsonOpt = False, stack: StackOpt = None, endpoint_url: EndpointOpt = None) -> None:
    """Every watch list: items, last job and its state, next firing."""
    target = require_stack(stack, endpoint_url)
    found = lists.views(target)
    if as_json:
        payload = [v.__dict__ | {"next_run": v.next_run.isoformat() if v.next_run else None} for v in found]
        typer.echo(json.dumps(payload, indent=2))
        return
    if not found:
        out.print("no watch lists: add one with `trawl watch add FILE --platform P --kind K`")
        return
    schedule = lists.watch_schedule(target)
    if schedule:
        out.print(f"schedule {schedule.name}: {schedule.expression} ({schedule.timezone})")
    table = Table("name", "platform/kind", "items", "last job", "state", "dt", "next firing (UTC)")
    for v in found:
        table.add_row(
            v.name,
            f"{v.platform}/{v.kind}",
            "?" if v.items is None else str(v.items),
            v.last_job_id or "-",
            v.last_state or "-",
            v.last_date or "-",
            "paused" if v.paused else (f"{v.next_run:%Y-%m-%d %H:%M}" if v.next_run else "-"),
        )
    out.print(table)


@watch_app.command("pause")
def pause(name: NameArg, stack: StackOpt = None, endpoint_url: EndpointOpt = None) -> None:
    """Skip the list at the schedule's firings until `trawl watch resume`."""
    wl = _checked(lambda: lists.pause(require_stack(stack, endpoint_url), name))
    out.print(f"paused watch list {wl.name}")


@watch_app.command("resume")
def resume(name: NameArg, stack: StackOpt = None, endpoint_url: EndpointOpt = None) -> None:
    """Fetch the list again at the schedule's firings."""
    wl = _checked(lambda: lists.resume(require_stack(stack, endpoint_url), name))
    out.print(f"resumed watch list {wl.name}")


@watch_app.command("remove")
def remove(name: NameArg, stack: StackOpt = None, endpoint_url: EndpointOpt = None) -> None:
    """Delete the list (its jobs and records stay)."""
    wl = _checked(lambda: lists.remove(require_stack(stack, endpoint_url), name))
    out.print(f"removed watch list {wl.name} (s3://…/{wl.key}); its jobs and records stay")


@watch_app.command("run-now")
def run_now(
    name: Annotated[str | None, typer.Argument(help="One list; without it, every list not paused.")] = None,
    again: Annotated[
        bool, typer.Option("--again", help="A new job even if the list was fetched today already.")
    ] = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Fire the schedule now. A list fetched today already is not fetched again (same job), unless --again."""
    target = require_stack(stack, endpoint_url)
    fired = _checked(lambda: lists.run_now(target, name, again))
    for wl, job_id in fired:
        out.print(f"fired {wl.name} ({wl.platform}/{wl.kind}): job {job_id}")
    out.print(
        f"follow with `trawl status {fired[0][1]}`" if len(fired) == 1 else "follow with `trawl status`"
    )
