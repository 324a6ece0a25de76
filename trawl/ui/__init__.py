"""`trawl ui`: a local web dashboard for any stack's jobs, dead-letter queues and queues, served
on 127.0.0.1 (also by `trawl up`). Pages read the stack through trawl.stack, as the CLI does."""

from trawl.ui.server import Running, serve_dashboard, start_dashboard

__all__ = ["Running", "serve_dashboard", "start_dashboard"]
