"""The commands that start a local stack, or run jobs on one: run, demo, up, faults."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from models import PAIRS, JobManifest, pair_problem
from models.endpoints import check_upstream_url
from trawl.cli.common import (
    DataDir,
    EndpointOpt,
    FaultsOpt,
    JsonOpt,
    LatencyOpt,
    StackOpt,
    VerboseOpt,
    app,
    attach,
    console,
    out,
    require_stack,
)
from trawl.cli.render import (
    print_summaries,
    render_summary,
    show_finished,
)
from trawl.local.create import check_schedules
from trawl.local.parameters import (
    UPSTREAM_URL_PARAMETERS,
    ParameterError,
    TemplateError,
    check_parameters,
    parse_parameters,
)
from trawl.local.runtime import set_handler_log_level
from trawl.local.session import LocalSession, Upstream, Upstreams, local_session, up_state
from trawl.local.template import load_template
from trawl.resources import sample_path
from trawl.sandbox import Faults
from trawl.stack.describe import Stack
from trawl.stack.jobs import load_manifest
from trawl.stack.running import UpState, clear, running_stack, state_file
from trawl.stack.submit import (
    AttachedSession,
    JobSummary,
    Session,
    copy_to_data_dir,
    start_rerun,
    submit_file,
    wait_for_jobs,
)
from trawl.stack.watch import WatchError, watch_schedule

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
ParameterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--parameter",
        metavar="NAME=VALUE",
        help="A template parameter for the stack this command creates, as `sam deploy "
        "--parameter-overrides` takes it (repeatable), e.g. --parameter OutputFormat=csv. Checked against "
        "template.yaml's constraints and Rules, as CloudFormation checks them, before anything starts.",
    ),
]
# (API, its URL flag, the environment variable and the key-file flag holding its key, its template parameter)
_UPSTREAM_FLAGS = {
    "tikapi": ("TikAPI", "--tikapi-url", "TIKAPI_KEY", "--tikapi-key-file", "TikApiBaseUrl"),
    "zyte": ("Zyte API", "--zyte-url", "ZYTE_API_KEY", "--zyte-key-file", "ZyteApiUrl"),
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
    problem = pair_problem(platform, kind)
    if problem:
        raise typer.BadParameter(problem)
    return platform, kind


def _quiet_logs(verbose: bool) -> None:
    """Handler logs only with --verbose."""
    set_handler_log_level(logging.INFO if verbose else logging.ERROR)


def _upstreams(
    tikapi_url: str | None, tikapi_key_file: Path | None, zyte_url: str | None, zyte_key_file: Path | None
) -> Upstreams:
    """The real upstreams the flags name, each with its key, checked before anything starts."""
    found: dict[str, Upstream] = {}
    for api, url, key_file in (("tikapi", tikapi_url, tikapi_key_file), ("zyte", zyte_url, zyte_key_file)):
        name, url_flag, variable, file_flag, _ = _UPSTREAM_FLAGS[api]
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


def _stack_parameters(items: list[str] | None, upstreams: Upstreams) -> dict[str, str]:
    """The --parameter values, checked against template.yaml (with the upstream flags' URLs, as
    the stack will get them) before anything starts; a bad one is a usage error (exit 2)."""
    try:
        parameters = parse_parameters(items or ())
    except ParameterError as exc:
        raise typer.BadParameter(str(exc), param_hint="--parameter") from exc
    urls: dict[str, str] = {}
    flags: dict[str, str] = {}
    for api, upstream in (("tikapi", upstreams.tikapi), ("zyte", upstreams.zyte)):
        name, url_flag, variable, file_flag, parameter = _UPSTREAM_FLAGS[api]
        if upstream is None:
            continue
        if parameter in parameters:
            raise typer.BadParameter(
                f"{url_flag} and --parameter {parameter}=... were both given, and both set the {name} "
                f"URL: pass one of them ({url_flag} also puts the key from {variable} or {file_flag} "
                "into the stack)",
                param_hint=f"{url_flag} / --parameter",
            )
        urls[parameter] = upstream.url
        flags[parameter] = url_flag
    if parameters or urls:
        try:
            template = load_template()
            checked = check_parameters(template, urls | parameters, loopback_http=UPSTREAM_URL_PARAMETERS)
            check_schedules(template, checked)
        except ParameterError as exc:
            hint = flags.get(exc.parameter or "", "--parameter")
            raise typer.BadParameter(str(exc), param_hint=hint) from exc
        except TemplateError as exc:
            console.print(f"[red]template.yaml cannot be checked[/]: {exc}")
            raise typer.Exit(1) from exc
    return parameters


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
    parameters: dict[str, str] | None = None,
) -> Session:
    attached = attach(stack_name, endpoint_url)
    if attached is not None:
        stack, up = attached
        _refuse_stack_settings(up, upstreams, parameters or {})
        if up is not None and (faults.rates or faults.latency_ms or faults.rpm or faults.domain_rpm):
            _set_sandbox_faults(up.sandbox_url, faults)
        if not quiet:
            console.print(f"using the running stack [bold]{stack.name}[/] ({stack.endpoint.url or 'AWS'})")
        return AttachedSession(stack)
    status = console.status("starting the embedded AWS and the sandbox") if not quiet else None
    if status:
        ctx.enter_context(status)
    session = _enter_local_session(ctx, faults, parameters, upstreams)
    if status:
        status.stop()
    if not quiet and (upstreams.tikapi or upstreams.zyte):
        for name, where in upstreams.describe(session.sandbox.url):
            console.print(f"  {name:<9} {where}")
    return session


def _enter_local_session(
    ctx: ExitStack, faults: Faults, parameters: dict[str, str] | None, upstreams: Upstreams
) -> LocalSession:
    """A private local stack, ended with `ctx`. Parameters its stack refuses (create_local_stack
    checks them again, with the sandbox's URLs the early check cannot know) are a usage error."""
    try:
        session: LocalSession = ctx.enter_context(
            local_session(faults=faults, parameters=parameters, upstreams=upstreams)
        )
    except ParameterError as exc:
        raise typer.BadParameter(str(exc), param_hint="--parameter") from exc
    return session


def _refuse_stack_settings(up: UpState | None, upstreams: Upstreams, parameters: dict[str, str]) -> None:
    """Upstreams and template parameters are a stack's own, set when it is created: a command
    using a running `trawl up` stack or a deployed one cannot change them (exit 2)."""
    upstream_flags = [f for f, u in (("--tikapi-url", upstreams.tikapi), ("--zyte-url", upstreams.zyte)) if u]
    if not upstream_flags and not parameters:
        return
    flags = " and ".join([*upstream_flags, *(["--parameter"] if parameters else [])])
    if up is not None:
        what = " and ".join(
            w for w, used in (("upstreams", upstream_flags), ("parameters", parameters)) if used
        )
        where = (
            f"the running `trawl up` stack sets its {what} when it starts: stop it, then "
            f"`trawl up {flags} ...`, or run without {flags}"
        )
    else:
        said = []
        if upstream_flags:
            said.append("a deployed stack's upstreams are its TikApiBaseUrl / ZyteApiUrl parameters")
        if parameters:
            said.append("a deployed stack's parameters are set when it is deployed")
        where = f"{'; '.join(said)} (sam deploy --parameter-overrides)"
    if parameters:
        where += "; a --parameter applies only to a stack this command creates"
    console.print(f"[red]{flags} cannot be used here[/]: {where}.")
    raise typer.Exit(2)


@dataclass(frozen=True)
class _Started:
    job_id: str
    label: str
    earlier: JobManifest | None = None  # the stack had processed this file before: that job


StartFn = Callable[[Session], list[_Started]]


def _submitting(files: list[tuple[Path, str, str]], again: bool = False) -> StartFn:
    """Starts a job per file by uploading it (see submit_file for a file processed before)."""

    def start(session: Session) -> list[_Started]:
        started = []
        for path, platform, kind in files:
            submitted = submit_file(session, path, platform, kind, again=again)
            started.append(_Started(submitted.job_id, f"{platform}/{kind} {path.name}", submitted.earlier))
        return started

    return start


def _run_jobs(
    start: StartFn,
    faults: Faults,
    data_dir: Path,
    quiet: bool,
    stack_name: str | None = None,
    endpoint_url: str | None = None,
    upstreams: Upstreams | None = None,
    parameters: dict[str, str] | None = None,
) -> list[tuple[JobSummary, JobManifest | None]]:
    """Start jobs on a session (`start`), follow them to their end with a progress bar, copy
    their output to the data dir: each job's summary, and the earlier job it is, if it is one."""
    with ExitStack() as ctx:
        session = _open_session(
            ctx, faults, quiet, stack_name, endpoint_url, upstreams or Upstreams(), parameters
        )
        started = start(session)
        jobs = [s.job_id for s in started]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet,
            transient=False,
        ) as bar:
            tasks: dict[str, TaskID] = {s.job_id: bar.add_task(s.label, total=None) for s in started}

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
        return [(summary, s.earlier) for summary, s in zip(summaries, started, strict=True)]


def _print_runs(
    runs: list[tuple[JobSummary, JobManifest | None]], as_json: bool, many: bool, file: str
) -> None:
    """The summaries; an earlier job's under a heading saying so (on stderr with --json, whose
    summary stays the one `trawl status` prints), with how to fetch it again."""
    for _, earlier in runs:
        if earlier is None:
            continue
        when = f"{earlier.created_at:%Y-%m-%d %H:%M} UTC"
        console.print(
            f"[yellow]already processed[/]: {escape(earlier.input.key)} (these very bytes) was job "
            f"{earlier.job_id}, started {when}; nothing new was fetched. To fetch it again as a new "
            f"job: `trawl run {escape(file)} --again` or `trawl rerun {earlier.job_id}`."
        )
    if as_json:
        print_summaries([s for s, _ in runs], True, many)
        return
    for summary, earlier in runs:
        if earlier is not None:
            out.print(f"\n[bold]Earlier job {earlier.job_id}[/] (from {earlier.job_date}, not a new run):")
            render_summary(summary)
        else:
            print_summaries([summary], False, many=False)


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


def _local_options(
    faults: str,
    latency_ms: int,
    tikapi_url: str | None,
    tikapi_key_file: Path | None,
    zyte_url: str | None,
    zyte_key_file: Path | None,
    parameter: list[str] | None,
) -> tuple[Faults, Upstreams, dict[str, str]]:
    """The sandbox's faults, the upstreams and the template parameters a local command was
    given, each checked (a bad one exits 2 before anything starts)."""
    upstreams = _upstreams(tikapi_url, tikapi_key_file, zyte_url, zyte_key_file)
    return _parse_faults(faults, latency_ms), upstreams, _stack_parameters(parameter, upstreams)


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
    parameter: ParameterOpt = None,
    again: Annotated[
        bool,
        typer.Option(
            "--again", help="Fetch again as a new job (dated today) a file this stack has processed."
        ),
    ] = False,
) -> None:
    """Run one CSV through the whole pipeline (the `trawl up` stack if one runs, else a private one);
    a file that stack has processed already is shown, not fetched again, unless --again."""
    _quiet_logs(verbose)
    pair = infer_pair(file, platform, kind)
    spec, upstreams, parameters = _local_options(
        faults, latency_ms, tikapi_url, tikapi_key_file, zyte_url, zyte_key_file, parameter
    )
    start = _submitting([(file, *pair)], again=again)
    runs = _run_jobs(start, spec, data_dir, as_json, stack, endpoint_url, upstreams, parameters)
    _print_runs(runs, as_json, many=False, file=str(file))
    summary, earlier = runs[0]
    if earlier is None and not summary.succeeded:
        raise typer.Exit(1)


@app.command()
def rerun(
    job: Annotated[str, typer.Argument(help="The job whose input to fetch again.")],
    data_dir: DataDir = Path("trawl-data"),
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
    stack: StackOpt = None,
    endpoint_url: EndpointOpt = None,
) -> None:
    """Fetch a job's input again as a new job, dated today (the earlier job's records stay)."""
    _quiet_logs(verbose)
    require_stack(stack, endpoint_url)  # a job's input lives on a stack that outlives the command

    def start(session: Session) -> list[_Started]:
        try:
            return [_Started(start_rerun(session, job), f"re-run of {job}")]
        except WatchError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from exc

    runs = _run_jobs(start, Faults.parse(""), data_dir, as_json, stack, endpoint_url)
    print_summaries([s for s, _ in runs], as_json, many=False)
    if not runs[0][0].succeeded:
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
    parameter: ParameterOpt = None,
) -> None:
    """Run the bundled sample CSVs for every platform on the local default."""
    _quiet_logs(verbose)
    spec, upstreams, parameters = _local_options(
        faults, latency_ms, tikapi_url, tikapi_key_file, zyte_url, zyte_key_file, parameter
    )
    files = [(sample_path(name), platform, kind) for (platform, kind), name in DEMO_FILES.items()]
    runs = _run_jobs(_submitting(files), spec, data_dir, as_json, stack, endpoint_url, upstreams, parameters)
    print_summaries([s for s, _ in runs], as_json, many=True)
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
    parameter: ParameterOpt = None,
) -> None:
    """Start the local stack (embedded AWS, sandbox, Lambda event loop) and keep it running until Ctrl-C."""
    _quiet_logs(verbose)
    if (existing := running_stack()) is not None:
        console.print(
            f"[red]A trawl stack is already running[/] (pid {existing.pid}, {existing.endpoint_url})."
        )
        raise typer.Exit(2)
    spec, upstreams, parameters = _local_options(
        faults, latency_ms, tikapi_url, tikapi_key_file, zyte_url, zyte_key_file, parameter
    )
    with console.status("starting the embedded AWS and the sandbox"), ExitStack() as ctx:
        session = _enter_local_session(ctx, spec, parameters, upstreams)
        session.runtime.watch_uploads()
        session.runtime.announce_finished_jobs(show_finished)
        # Imported here: the web server's packages load only for the commands that serve it.
        from trawl.ui import start_dashboard

        dashboard = start_dashboard(session.stack)
        ctx.callback(dashboard.stop)
        state = dataclasses.replace(up_state(session), ui_url=dashboard.url)
        state.save()
        ctx.callback(clear, state.pid)
        console.status("").stop()
        shown = " ".join(f"{k}={v}" for k, v in parameters.items())
        lines = [
            "trawl is up (Ctrl-C to stop)",
            f"  AWS endpoint  {state.endpoint_url}",
            f"  bucket        s3://{session.stack.bucket}  (upload to input/<platform>/<kind>/)",
            f"  Lambda        {state.lambda_url}  (the local stand-in's Invoke API)",
            f"  dashboard     {dashboard.url}",
            *_watch_line(session.stack),
            *(f"  {name:<13} {where}" for name, where in upstreams.describe(state.sandbox_url)),
            *([f"  parameters    {escape(shown)}"] if parameters else []),
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


def _watch_line(stack: Stack) -> list[str]:
    schedule = watch_schedule(stack)
    if schedule is None:
        return []
    when = schedule.next_run()
    upcoming = f"next {when:%Y-%m-%d %H:%M} UTC" if when else "no firing ahead"
    where = "(lists under watch/<platform>/<kind>/)"
    return [f"  watch lists   {schedule.expression} in {schedule.timezone}, {upcoming}  {where}"]


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
