"""`trawl ui`: the local web dashboard (trawl/ui/) for any stack, served until Ctrl-C."""

from __future__ import annotations

from typing import Annotated

import typer

from trawl.cli.common import EndpointOpt, StackOpt, app, console, out, require_stack

PortOpt = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (default: a free one).")
]


@app.command()
def ui(port: PortOpt = 0, stack: StackOpt = None, endpoint_url: EndpointOpt = None) -> None:
    """A web dashboard on 127.0.0.1 for a stack's jobs, dead-letter queues and queues (the
    `trawl up` stack unless --stack or --endpoint-url say otherwise), until Ctrl-C. Open the URL
    it prints: it carries this run's token."""
    # Imported here: the web server's packages load only for the commands that serve it.
    from trawl.ui import serve_dashboard

    target = require_stack(stack, endpoint_url)
    try:
        serve_dashboard(target, port, lambda url: out.print(f"dashboard  {url}  (Ctrl-C to stop)"))
    except OSError as exc:
        console.print(f"[red]cannot listen on 127.0.0.1:{port}[/]: {exc.strerror or exc}")
        raise typer.Exit(2) from exc
