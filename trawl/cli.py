"""The `trawl` command: runs jobs on the local default (embedded AWS + sandbox upstream) and
reports them. See DESIGN.md, "Commands"."""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from models import PAIRS
from trawl.local.pipeline import (
    JobSummary,
    LocalSession,
    copy_to_data_dir,
    dead_letters_by_job,
    job_id_of,
    local_session,
    summarise,
    upload,
    wait_for_jobs,
)
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
    # The handlers run in this process; their Powertools loggers read the level at import.
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO" if verbose else "ERROR"
    logging.getLogger("trawl").setLevel(logging.INFO if verbose else logging.ERROR)
    logging.getLogger("botocore").setLevel(logging.ERROR)


def _run_files(
    files: list[tuple[Path, str, str]], faults: Faults, data_dir: Path, quiet: bool
) -> list[JobSummary]:
    with ExitStack() as stack:
        status = console.status("starting the embedded AWS and the sandbox") if not quiet else None
        if status:
            stack.enter_context(status)
        session: LocalSession = stack.enter_context(local_session(faults=faults))
        if status:
            status.stop()
        jobs: list[str] = []
        for path, platform, kind in files:
            key = upload(session.stack, path, platform, kind)
            session.runtime.deliver(session.runtime.upload_event(session.stack.bucket, key))
            jobs.append(job_id_of(session.stack, key))
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

            def on_progress(job_id: str, done: int, total: int) -> None:
                bar.update(tasks[job_id], completed=done, total=total or None)

            wait_for_jobs(session, jobs, on_progress)
            for job_id in jobs:
                bar.update(tasks[job_id], completed=bar.tasks[tasks[job_id]].total or 0)
        copy_to_data_dir(session.stack, data_dir)
        dead: Counter[str] = Counter()
        for platform in session.stack.platforms:
            dead += dead_letters_by_job(session.stack, platform)
        return [summarise(session.stack, job_id, data_dir, dead) for job_id in jobs]


def _print(summaries: list[JobSummary], as_json: bool, many: bool) -> None:
    if as_json:
        payload = [s.to_dict() for s in summaries]
        typer.echo(json.dumps(payload if many else payload[0], indent=2))
        return
    for s in summaries:
        colour = "green" if s.succeeded else "red"
        out.print(f"\n[bold]job {s.job_id}[/]  {s.platform}/{s.kind}  {s.input_key}  [{colour}]{s.status}[/]")
        if s.message:
            out.print(f"  [red]{s.message}[/]")
        out.print(
            f"  rows {s.rows} = enqueued {s.enqueued} + duplicates {s.duplicates} + rejected {s.rejected}"
        )
        out.print(
            f"  written ok {s.written_ok} · written with a permanent status {s.written_permanent}"
            f" · dead-lettered {s.dead_lettered} · in flight {s.in_flight}"
        )
        if s.output_prefix:
            local = Path(s.data_dir) / s.output_prefix.split("/", 3)[3]
            out.print(f"  records: {s.output_prefix}\n           copied to {local}")
        if s.rejected:
            out.print(f"  rejects: {Path(s.data_dir) / 'jobs' / s.job_id / 'rejects.csv'}")


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
) -> None:
    """Run one CSV through the whole pipeline on the local default."""
    _quiet_logs(verbose)
    pair = infer_pair(file, platform, kind)
    try:
        spec = Faults.parse(faults, latency_ms=latency_ms)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from exc
    summaries = _run_files([(file, *pair)], spec, data_dir, quiet=as_json)
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
) -> None:
    """Run the bundled sample CSVs for every platform on the local default."""
    _quiet_logs(verbose)
    spec = Faults.parse(faults, latency_ms=latency_ms)
    samples = resources.files("trawl") / "samples"
    files = [(Path(str(samples / name)), platform, kind) for (platform, kind), name in DEMO_FILES.items()]
    summaries = _run_files(files, spec, data_dir, quiet=as_json)
    _print(summaries, as_json, many=True)
    if not as_json:
        sql = "select unique_id, followers from tiktok_accounts order by followers desc limit 5"
        out.print(f'\nTry: trawl query "{sql}" --data-dir {data_dir}')


def main() -> None:
    app()
