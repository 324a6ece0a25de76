"""The `trawl` command (docs/contract.md, "Commands"), one module per group of commands:
`local` (run, demo, up, faults: they start the local default or use it), `jobs` (status,
redrive, replay: any stack), `watch` (watch lists), `analysis` (query, cost), `ui` (the web dashboard)."""

# Each module registers its commands as it is imported: this order is the order of `trawl --help`.
from trawl.cli import local  # isort: split

from trawl.cli import jobs  # isort: split

from trawl.cli import watch  # isort: split

from trawl.cli import analysis  # isort: split

from trawl.cli import ui
from trawl.cli.common import app

__all__ = ["analysis", "app", "jobs", "local", "main", "ui", "watch"]


def main() -> None:
    app()
