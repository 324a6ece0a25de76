"""Commands on the results: query (DuckDB over the data dir) and cost."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from trawl.cli.common import (
    JsonOpt,
    app,
    console,
    out,
)


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

    from rich.text import Text

    from trawl.analysis.query import FORMATS, QueryError, run_query, write_result

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
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=100, help="WorkerBatchSize.")] = 10,
    fetch_concurrency: Annotated[
        int, typer.Option("--fetch-concurrency", min=1, max=100, help="A batch's items fetched at once.")
    ] = 10,
    calls_per_take: Annotated[
        float,
        typer.Option(
            "--calls-per-take",
            min=0,
            help="With a rate budget (RequestsPerMinute > 0): calls per take of tokens (1 at the limit).",
        ),
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """What a job costs on AWS: trawl's SQS fan-out next to Step Functions Distributed Map."""
    from dataclasses import asdict, replace

    from trawl.analysis.cost import Prices, Workload, compare, worker_gb_seconds_per_item

    prices = Prices()
    workload = Workload(
        items=items,
        avg_latency_ms=avg_latency_ms,
        retry_rate=retry_rate,
        batch_size=batch_size,
        fetch_concurrency=fetch_concurrency,
        calls_per_take=calls_per_take,
    )
    estimates = compare(workload, prices)
    by_batch = {
        size: worker_gb_seconds_per_item(replace(workload, batch_size=size, fetch_concurrency=size))
        for size in (10, 100)
    }
    if as_json:
        payload = {
            "prices": asdict(prices),
            "workload": asdict(workload),
            "worker_gb_seconds_per_item": {f"batch_{size}": gbs for size, gbs in by_batch.items()},
        }
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
    out.print(
        "worker GB-seconds per item, every item of a batch fetched at once: "
        + " · ".join(f"batch {size} {gbs:.4f}" for size, gbs in by_batch.items())
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
