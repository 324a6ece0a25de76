"""What every command shares: the app, the consoles, the common options, and finding the stack
a command works on (--stack, --endpoint-url, or the running `trawl up`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trawl.stack.describe import DEFAULT_STACK_NAME, Stack, describe_stack
from trawl.stack.endpoint import REGION, Endpoint
from trawl.stack.running import UpState, running_stack

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


def attach(stack_name: str | None, endpoint_url: str | None) -> tuple[Stack, UpState | None] | None:
    """The stack named by the flags, else the running `trawl up` stack, else None."""
    if stack_name or endpoint_url:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or REGION
        endpoint = Endpoint(url=endpoint_url, region=region, local=False)
        return describe_stack(endpoint, stack_name or DEFAULT_STACK_NAME, with_functions=False), None
    up = running_stack()
    if up is None:
        return None
    endpoint = Endpoint(url=up.endpoint_url, lambda_url=up.lambda_url)
    return describe_stack(endpoint, up.stack_name, with_functions=False), up


def require_stack(stack_name: str | None, endpoint_url: str | None) -> Stack:
    attached = attach(stack_name, endpoint_url)
    if attached is None:
        console.print(
            "[red]No running stack:[/] start one with `trawl up` (in another terminal), or pass --stack NAME."
        )
        raise typer.Exit(2)
    return attached[0]
