"""The `trawl` command: runs jobs on the local default (embedded AWS + sandbox upstream) and
reports them. See docs/contract.md, "Commands"."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import time
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from models import PAIRS
from models.endpoints import check_upstream_url
from trawl.jobs import load_manifest
from trawl.local.aws import REGION, Endpoint
from trawl.local.pipeline import (
    STACK_NAME,
    AttachedSession,
    JobSummary,
    LocalSession,
    Session,
    Upstream,
    Upstreams,
    copy_to_data_dir,
    local_session,
    submit,
    wait_for_jobs,
)
from trawl.local.runtime import set_handler_log_level
from trawl.local.stack import Stack, describe_stack
from trawl.local.up import UpState, clear, running_stack, state_file
from trawl.ops import dead_lettered_items, job_status, move_tasks, recent_jobs, redrive, replay
from trawl.sandbox import Faults

app = typer.Typer(add_completion=False, no_args_is_help=True, help="trawl: CSV in S3 -> one record per item.")
console = Console(stderr=True)  # progress and status
out = Console(soft_wrap=True)  # the summary

DataDir = Annotated[Path, typer.Option("--data-dir", help="Where output/ and jobs/ are copied at the end.")]
FaultsOpt = Annotated[
    str, typer.Option("--faults", help="Sandbox error rates, e.g. 429=0.1,500=0.05,timeout=0.02")
]
LatencyOpt = Annotated[int, typer.Option("--latency-ms", min=0, help="Sandbox latency per upstream call.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the handlers' logs.")]
TikApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--tikapi-url",
        help="Use this TikAPI instead of the sandbox: its base URL, as the TikApiBaseUrl parameter means it "
        "(e.g. https://api.tikapi.io); key from TIKAPI_KEY or --tikapi-key-file.",
    ),
]
ZyteUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--zyte-url",
        help="Use this Zyte API instead of the sandbox: its extract endpoint, as the ZyteApiUrl parameter "
        "means it (e.g. https://api.zyte.com/v1/extract); key from ZYTE_API_KEY or --zyte-key-file.",
    ),
]
TikApiKeyFileOpt = Annotated[
    Path | None,
    typer.Option("--tikapi-key-file", help="A file holding the TikAPI key (instead of TIKAPI_KEY)."),
]
ZyteKeyFileOpt = Annotated[
    Path | None,
    typer.Option("--zyte-key-file", help="A file holding the Zyte API key (instead of ZYTE_API_KEY)."),
]
# (API, its URL flag, the environment variable and the key-file flag holding its key)
_UPSTREAM_FLAGS = {
    "tikapi": ("TikAPI", "--tikapi-url", "TIKAPI_KEY", "--tikapi-key-file"),
    "zyte": ("Zyte API", "--zyte-url", "ZYTE_API_KEY", "--zyte-key-file"),
}

DEMO_FILES = {
    ("tiktok", "account"): "tiktok_accounts.csv",
    ("tiktok", "videos"): "tiktok_videos.csv",
    ("tokopedia", "product"): "tokopedia_products.csv",
    ("shopee", "product"): "shopee_products.csv",
    ("lazada", "product"): "lazada_products.csv",
}


def infer_pair(path: Path, platform: str | None, kind: str | None) -> tuple[str, str]:
    """Platform/kind from the flags, else from words in the file's name."""
    words = set(re.split(r"[^a-z]+", path.stem.lower()))
    platform = platform or next((p for p, _ in sorted(PAIRS) if p in words), None)
    if platform is None:
        raise typer.BadParameter(
            f"cannot tell the platform from '{path.name}'; pass --platform", param_hint="FILE"
        )
    if kind is None:
        kinds = sorted(k for p, k in PAIRS if p == platform)
        kind = next((k for k in kinds if k in words or k.rstrip("s") in words or k + "s" in words), kinds[0])
    if (platform, kind) not in PAIRS:
        known = ", ".join(sorted(f"{p}/{k}" for p, k in PAIRS))
        raise typer.BadParameter(f"'{platform}/{kind}' is not a platform/kind trawl knows: {known}")
    return platform, kind


def _quiet_logs(verbose: bool) -> None:
    """Handler logs only with --verbose."""
    set_handler_log_level(logging.INFO if verbose else logging.ERROR)


StackOpt = Annotated[
    str | None, typer.Option("--stack", help="A deployed stack's name (bucket and queues from its outputs).")
]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint-url", help="Any AWS-compatible endpoint (e.g. LocalStack).")
]


def _attach(stack_name: str | None, endpoint_url: str | None) -> tuple[Stack, UpState | None] | None:
    """The stack named by the flags, else the running `trawl up` stack, else None."""
    if stack_name or endpoint_url:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
        endpoint = Endpoint(url=endpoint_url, region=region, local=False)
        return describe_stack(endpoint, stack_name or STACK_NAME, with_functions=False), None
    up = running_stack()
    if up is None:
        return None
    endpoint = Endpoint(url=up.endpoint_url, lambda_url=up.lambda_url)
    return describe_stack(endpoint, up.stack_name, with_functions=False), up


def _require_stack(stack_name: str | None, endpoint_url: str | None) -> Stack:
    attached = _attach(stack_name, endpoint_url)
    if attached is None:
        console.print(
            "[red]No running stack:[/] start one with `trawl up` (in another terminal), or pass --stack NAME."
        )
        raise typer.Exit(2)
    return attached[0]


def _upstreams(
    tikapi_url: str | None, tikapi_key_file: Path | None, zyte_url: str | None, zyte_key_file: Path | None
) -> Upstreams:
    """The real upstreams the flags name, each with its key, checked before anything starts."""
    found: dict[str, Upstream] = {}
    for api, url, key_file in (("tikapi", tikapi_url, tikapi_key_file), ("zyte", zyte_url, zyte_key_file)):
        name, url_flag, variable, file_flag = _UPSTREAM_FLAGS[api]
        if url is None:
            if key_file is not None:
                raise typer.BadParameter(f"{file_flag} needs {url_flag}: the sandbox has keys of its own")
            continue
        try:
            checked = check_upstream_url(url, allow_loopback_http=True)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=url_flag) from exc
        key = _read_key(key_file) if key_file is not None else os.environ.get(variable, "").strip()
        if not key:
            raise typer.BadParameter(
                f"{name} at {checked} needs its API key: set {variable}, or pass {file_flag} FILE",
                param_hint=url_flag,
            )
        found[api] = Upstream(checked, key)
    return Upstreams(**found)


def _read_key(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read the key file {path}: {type(exc).__name__}") from exc


def _set_sandbox_faults(sandbox_url: str, faults: Faults) -> None:
    payload = {"faults": faults.spec(), "latency_ms": faults.latency_ms}
    httpx.post(f"{sandbox_url}/_sandbox/faults", json=payload, timeout=5).raise_for_status()


def _open_session(
    ctx: ExitStack,
    faults: Faults,
    quiet: bool,
    stack_name: str | None,
    endpoint_url: str | None,
    upstreams: Upstreams,
) -> Session:
    attached = _attach(stack_name, endpoint_url)
    if attached is not None:
        stack, up = attached
        if upstreams.tikapi or upstreams.zyte:
            flags = " and ".join(
                f for f, u in (("--tikapi-url", upstreams.tikapi), ("--zyte-url", upstreams.zyte)) if u
            )
            where = (
                "the running `trawl up` stack sets its upstreams when it starts: stop it, then "
                f"`trawl up {flags} ...`, or run without {flags}"
                if up is not None
                else "a deployed stack's upstreams are its TikApiBaseUrl / ZyteApiUrl parameters "
                "(sam deploy --parameter-overrides)"
            )
            console.print(f"[red]{flags} cannot be used here[/]: {where}.")
            raise typer.Exit(2)
        if up is not None and (faults.rates or faults.latency_ms):
            _set_sandbox_faults(up.sandbox_url, faults)
        if not quiet:
            console.print(f"using the running stack [bold]{stack.name}[/] ({stack.endpoint.url or 'AWS'})")
        return AttachedSession(stack)
    status = console.status("starting the embedded AWS and the sandbox") if not quiet else None
    if status:
        ctx.enter_context(status)
    session: LocalSession = ctx.enter_context(local_session(faults=faults, upstreams=upstreams))
    if status:
        status.stop()
    if not quiet and (upstreams.tikapi or upstreams.zyte):
        for name, where in upstreams.describe(session.sandbox.url):
            console.print(f"  {name:<9} {where}")
    return session


def _run_files(
    files: list[tuple[Path, str, str]],
    faults: Faults,
    data_dir: Path,
    quiet: bool,
    stack_name: str | None = None,
    endpoint_url: str | None = None,
    upstreams: Upstreams | None = None,
) -> list[JobSummary]:
    with ExitStack() as ctx:
        session = _open_session(ctx, faults, quiet, stack_name, endpoint_url, upstreams or Upstreams())
        jobs = [submit(session, path, platform, kind) for path, platform, kind in files]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=False,
        ) as bar:
            tasks: dict[str, TaskID] = {
                job_id: bar.add_task(f"{platform}/{kind} {path.name}", total=None)
                for job_id, (path, platform, kind) in zip(jobs, files, strict=True)
            }

            def on_progress(job_id: str, done: int, total: int, producing: bool) -> None:
                # While the producer is still reading the file the total is not known yet: "800/?",
                # not a full-looking "800/800".
                bar.update(tasks[job_id], completed=done, total=None if producing else total or None)

            try:
                summaries = wait_for_jobs(session, jobs, on_progress)
            except KeyboardInterrupt:
                bar.stop()
                _interrupted(session, jobs)
                raise typer.Exit(130) from None
        stack = session.stack
        deployed = not stack.endpoint.local
        # A deployed bucket holds every job ever run: copy just this run's jobs from it.
        prefixes = (
            tuple(f"jobs/{j}/" for j in jobs) + tuple(_output_prefixes(stack, jobs)) if deployed else None
        )
        copy_to_data_dir(stack, data_dir, prefixes or ("output/", "jobs/"))
        for summary in summaries:
            summary.data_dir = str(data_dir)
        return summaries


def _interrupted(session: Session, jobs: list[str]) -> None:
    """What Ctrl-C leaves behind, said plainly: a private stack ends with the command; an
    attached one (`trawl up`, deployed) keeps working on the jobs."""
    ids = ", ".join(jobs)
    if isinstance(session, LocalSession):
        console.print(
            f"[yellow]interrupted[/]: job {ids} stopped with this command's private stack, and nothing was "
            "copied. Run it again to start over, or start `trawl up` in another terminal first: jobs on "
            "that stack keep running when a command stops."
        )
    else:
        console.print(
            f"[yellow]interrupted[/]: job {ids} keeps running in stack {session.stack.name}; "
            f"follow it with `trawl status {jobs[0]}`."
        )


def _output_prefixes(stack: Stack, jobs: list[str]) -> list[str]:
    found = [load_manifest(stack, j) for j in jobs]
    return [
        f"output/platform={m.platform}/kind={m.kind}/dt={m.job_date}/{m.job_id}-"
        for m in found
        if m and m.platform
    ]


def _print(summaries: list[JobSummary], as_json: bool, many: bool) -> None:
    if as_json:
        payload = [s.to_dict() for s in summaries]
        typer.echo(json.dumps(payload if many else payload[0], indent=2))
        return
    for s in summaries:
        out.print()
        _render(s)


_STATE_COLOURS = {"done": "green", "failed": "red"}


def _render(s: JobSummary) -> None:
    """One job, as `run`, `demo` and `status` print it. Items and records are kept apart: for
    tiktok/videos an item is an account, and its records are its videos."""
    colour = _STATE_COLOURS.get(s.state, "yellow")
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


@app.command()
def run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The input CSV.")],
    platform: Annotated[str | None, typer.Option(help="tiktok, tokopedia, shopee or lazada")] = None,
    kind: Annotated[str | None, typer.Option(help="account, videos or product")] = None,
    faults: FaultsOpt = "",
    latency_ms: LatencyOpt = 0,
    data_dir: DataDir = Path("trawl-data"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
    tikapi_url: TikApiUrlOpt = None,
    zyte_url: ZyteUrlOpt = None,
    tikapi_key_file: TikApiKeyFileOpt = None,
    zyte_key_file: ZyteKeyFileOpt = None,
) -> None:
    """Run one CSV through the whole pipeline (the `trawl up` stack if one runs, else a private one)."""
    _quiet_logs(verbose)
    pair = infer_pair(file, platform, kind)
    spec = _parse_faults(faults, latency_ms)
    upstreams = _upstreams(tikapi_url, tikapi_key_file, zyte_url, zyte_key_file)
    summaries = _run_files([(file, *pair)], spec, data_dir, as_json, stack, endpoint_url, upstreams)
    _print(summaries, as_json, many=False)
    if not summaries[0].succeeded:
        raise typer.Exit(1)


@app.command()
def demo(
    faults: FaultsOpt = "",
    latency_ms: LatencyOpt = 0,
    data_dir: DataDir = Path("trawl-data"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
    tikapi_url: TikApiUrlOpt = None,
    zyte_url: ZyteUrlOpt = None,
    tikapi_key_file: TikApiKeyFileOpt = None,
    zyte_key_file: ZyteKeyFileOpt = None,
) -> None:
    """Run the bundled sample CSVs for every platform on the local default."""
    _quiet_logs(verbose)
    spec = _parse_faults(faults, latency_ms)
    upstreams = _upstreams(tikapi_url, tikapi_key_file, zyte_url, zyte_key_file)
    samples = resources.files("trawl") / "samples"
    files = [(Path(str(samples / name)), platform, kind) for (platform, kind), name in DEMO_FILES.items()]
    summaries = _run_files(files, spec, data_dir, as_json, stack, endpoint_url, upstreams)
    _print(summaries, as_json, many=True)
    if not as_json:
        sql = "select unique_id, followers from tiktok_accounts order by followers desc limit 5"
        # As the user called it: after `make demo` that is .venv/bin/trawl, not a `trawl` on PATH.
        command = sys.argv[0] if Path(sys.argv[0]).name == "trawl" else "trawl"
        out.print(f'\nTry: {command} query "{sql}" --data-dir {data_dir}')


@app.command()
def up(
    faults: FaultsOpt = "",
    latency_ms: LatencyOpt = 0,
    verbose: VerboseOpt = False,
    tikapi_url: TikApiUrlOpt = None,
    zyte_url: ZyteUrlOpt = None,
    tikapi_key_file: TikApiKeyFileOpt = None,
    zyte_key_file: ZyteKeyFileOpt = None,
) -> None:
    """Start the local stack (embedded AWS, sandbox, Lambda event loop) and keep it running until Ctrl-C."""
    _quiet_logs(verbose)
    if (existing := running_stack()) is not None:
        console.print(
            f"[red]A trawl stack is already running[/] (pid {existing.pid}, {existing.endpoint_url})."
        )
        raise typer.Exit(2)
    spec = _parse_faults(faults, latency_ms)
    upstreams = _upstreams(tikapi_url, tikapi_key_file, zyte_url, zyte_key_file)
    with console.status("starting the embedded AWS and the sandbox"), ExitStack() as ctx:
        session: LocalSession = ctx.enter_context(local_session(faults=spec, upstreams=upstreams))
        session.runtime.watch_uploads()
        session.runtime.announce_finished_jobs(_show_finished)
        state = UpState(
            session.aws.endpoint.url or "",
            session.sandbox.url,
            session.stack.name,
            os.getpid(),
            session.runtime.invoke_server.url,
        )
        state.save()
        ctx.callback(clear, state.pid)
        console.status("").stop()
        lines = [
            "trawl is up (Ctrl-C to stop)",
            f"  AWS endpoint  {state.endpoint_url}",
            f"  bucket        s3://{session.stack.bucket}  (upload to input/<platform>/<kind>/)",
            f"  Lambda        {state.lambda_url}  (the local stand-in's Invoke API)",
            *(f"  {name:<13} {where}" for name, where in upstreams.describe(state.sandbox_url)),
            f"  state file    {state_file()}",
        ]
        out.print("\n".join(lines))
        # Ctrl-C or a plain `kill` stop it cleanly (a shell may start background jobs ignoring SIGINT).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            out.print("stopping")


def _show_finished(detail: dict[str, object]) -> None:
    """One line in `trawl up`'s log per `Job Finished` event."""
    colour = _STATE_COLOURS.get(str(detail.get("state")), "yellow")
    reasons = detail.get("failure_reasons") or {}
    why = " · ".join(f"{r} {n}" for r, n in reasons.items()) if isinstance(reasons, dict) else ""
    out.print(
        f"job {detail.get('job_id')} finished [{colour}]{detail.get('state')}[/]: {detail.get('platform')}/"
        f"{detail.get('kind')} {detail.get('input_key')} · ok {detail.get('written_ok')} · permanent "
        f"{detail.get('written_permanent')} · dead-lettered {detail.get('dead_lettered')}"
        + (f" · reasons: {why}" if why else "")
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parse_faults(faults: str, latency_ms: int) -> Faults:
    try:
        return Faults.parse(faults, latency_ms=latency_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from exc


@app.command("faults")
def set_faults(
    spec: Annotated[str, typer.Argument(help='e.g. "500=1.0" or "" for none')],
    latency_ms: LatencyOpt = 0,
) -> None:
    """Change the running `trawl up` sandbox's injected faults and latency."""
    up_state = running_stack()
    if up_state is None:
        console.print("[red]No running stack:[/] start one with `trawl up`.")
        raise typer.Exit(2)
    faults = _parse_faults(spec, latency_ms)
    _set_sandbox_faults(up_state.sandbox_url, faults)
    out.print(f"sandbox faults: {faults.spec() or 'none'}, latency {faults.latency_ms} ms")


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
    target = _require_stack(stack, endpoint_url)
    if job is None:
        _print_recent(recent_jobs(target), as_json)
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
        _render(found)
        for item in needing:
            out.print(f"    {item['item_key']}  {item['outcome']}  {item['reason']}: {item['error']}")
    raise typer.Exit({"done": 0, "failed": 1}.get(found.state, 3))


def _print_recent(jobs: list[dict[str, object]], as_json: bool) -> None:
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
    target = _require_stack(stack, endpoint_url)
    if platform not in target.platforms:
        raise typer.BadParameter(
            f"'{platform}' is not one of {', '.join(target.platforms)}", param_hint="PLATFORM"
        )
    if show_status:
        _print_move_tasks(target, platform)
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


def _print_move_tasks(target: Stack, platform: str) -> None:
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
    target = _require_stack(stack, endpoint_url)
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


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the views tiktok_accounts, tiktok_videos, products.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="The folder `trawl run` / `trawl demo` copied output/ to.")
    ] = Path("trawl-data"),
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run SQL (DuckDB) over the records in the data dir."""
    # Imported here so the other commands never load DuckDB.
    import sys

    from rich.text import Text

    from trawl.query import FORMATS, QueryError, run_query, write_result

    if fmt not in FORMATS:
        raise typer.BadParameter(f"'{fmt}' is not one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        result = run_query(data_dir, sql)
    except QueryError as exc:
        console.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(1) from exc
    write_result(result, fmt, sys.stdout)


@app.command()
def cost(
    items: Annotated[int, typer.Option("--items", min=1, help="Items in the job (or in a day of jobs).")],
    avg_latency_ms: Annotated[
        float,
        typer.Option("--avg-latency-ms", min=0, help="Average upstream call; a batch's items run at once."),
    ] = 2_000.0,
    retry_rate: Annotated[
        float, typer.Option("--retry-rate", min=0, max=0.99, help="Share of deliveries that fail and retry.")
    ] = 0.05,
    as_json: JsonOpt = False,
) -> None:
    """What a job costs on AWS: trawl's SQS fan-out next to Step Functions Distributed Map."""
    from dataclasses import asdict

    from trawl.cost import Prices, Workload, compare

    prices = Prices()
    workload = Workload(items=items, avg_latency_ms=avg_latency_ms, retry_rate=retry_rate)
    estimates = compare(workload, prices)
    if as_json:
        payload = {"prices": asdict(prices), "workload": asdict(workload)}
        typer.echo(json.dumps(payload | {"estimates": [e.to_dict() for e in estimates]}, indent=2))
        return
    out.print(
        f"[bold]AWS price inputs[/] ({prices.region} list prices as assumed on {prices.as_of};"
        " inputs, not live)"
    )
    for name, value in asdict(prices).items():
        if name not in ("as_of", "region"):
            out.print(f"  {name:<40} ${value:g}")
    out.print(
        f"[bold]workload[/] {items:,} items · upstream {avg_latency_ms:g} ms · retry rate {retry_rate:g}"
        f" · batch {workload.batch_size} · workers {workload.worker_memory_mb} MB arm64"
    )
    for estimate in estimates:
        out.print(f"\n[bold]{estimate.name}[/]")
        for line in estimate.lines:
            out.print(
                f"  {line.service:<15}{line.what:<72}{line.quantity:>16,.1f} {line.unit:<12}"
                f"${line.cost:>10.4f}"
            )
        services = " · ".join(f"{s} ${c:.2f}" for s, c in estimate.by_service().items())
        out.print(
            f"  [bold]total ${estimate.total:,.2f}[/]"
            f"  (${estimate.per_million_items:,.2f} per million items)  {services}"
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
