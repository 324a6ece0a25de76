"""What every command shares: the app, the consoles, the common options, and finding the stack a command works on."""

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
from models import PAIRS, pair_problem
from models.endpoints import check_upstream_url
from trawl.local.runtime import set_handler_log_level
from trawl.local.session import STACK_NAME, LocalSession, Upstream, Upstreams, local_session
from trawl.sandbox import Faults
from trawl.stack.describe import Stack, describe_stack
from trawl.stack.endpoint import REGION, Endpoint
from trawl.stack.jobs import load_manifest
from trawl.stack.ops import dead_lettered_items, job_status, move_tasks, recent_jobs, redrive, replay
from trawl.stack.running import UpState, clear, running_stack, state_file
from trawl.stack.submit import AttachedSession, JobSummary, Session, copy_to_data_dir, submit, wait_for_jobs


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
