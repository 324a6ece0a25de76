"""The dashboard's web app (`trawl ui`): server-rendered pages over one stack, each with a
fragment that the page's script polls while something runs. Everything behind trawl.ui.guard."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any
from urllib.parse import parse_qs

from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from trawl.stack.describe import Stack
from trawl.stack.ops import job_status, redrive
from trawl.ui import pages
from trawl.ui.guard import Access, Guard

JOB_ID = re.compile(r"[0-9a-f]{16}")
RECORD_NAME = re.compile(r"[A-Za-z0-9._=-]{1,400}")
POLL_RUNNING_MS = 2000
POLL_IDLE_MS = 10_000  # the jobs page, while nothing runs: a new upload still shows up
POLL_QUEUES_MS = 3000
REDRIVE_FOLLOW_S = 120  # a job page keeps refreshing this long after a re-drive
FORM_LIMIT = 4096


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=PackageLoader("trawl.ui", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {
        "duration": _duration,
        "when": _when,
        "number": lambda n: f"{n:,}",
        "percent": lambda share: f"{100 * share:.0f}%",
        "label": lambda name: str(name).replace("_", " "),
    }
    return Jinja2Templates(env=env)


def _job_id(request: Request) -> str:
    job_id = str(request.path_params["job_id"])
    if not JOB_ID.fullmatch(job_id):
        raise HTTPException(404, f"no job {job_id}")
    return job_id


class Dashboard:
    """The pages of one stack. Each page's data comes from trawl.ui.pages; the handlers only
    pick a template."""

    def __init__(self, stack: Stack, access: Access) -> None:
        self.stack = stack
        self.access = access
        self.templates = _templates()
        self.redriven: dict[str, float] = {}  # job id -> when this dashboard last re-drove it

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context |= {
            "stack_name": self.stack.name,
            "endpoint": self.stack.endpoint.url or f"AWS {self.stack.endpoint.region}",
            "form_token": self.access.form_token,
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    # -- jobs

    def jobs_context(self) -> dict[str, Any]:
        lines = pages.job_lines(self.stack)
        running = any(line.running for line in lines)
        return {
            "jobs": lines,
            "watch_lists": pages.watch_lists(self.stack),
            "poll_ms": POLL_RUNNING_MS if running else POLL_IDLE_MS,
        }

    def jobs(self, request: Request) -> Response:
        return self.render(request, "jobs.html", nav="jobs", **self.jobs_context())

    def jobs_fragment(self, request: Request) -> Response:
        return self.render(request, "_jobs.html", **self.jobs_context())

    # -- one job

    def job_context(self, request: Request) -> dict[str, Any]:
        job_id = _job_id(request)
        try:
            page = pages.job_page(self.stack, job_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        following = time.monotonic() - self.redriven.get(job_id, -1e9) < REDRIVE_FOLLOW_S
        polling = page.running or (following and page.summary.state != "done")
        moved = request.query_params.get("moved")
        return {
            "job": page,
            "s": page.summary,
            "polling": polling,
            "poll_ms": POLL_RUNNING_MS,
            "moved": moved,
        }

    def job(self, request: Request) -> Response:
        return self.render(request, "job.html", nav="jobs", **self.job_context(request))

    def job_fragment(self, request: Request) -> Response:
        return self.render(request, "_job.html", **self.job_context(request))

    async def redrive(self, request: Request) -> Response:
        """Re-drive the job's dead-lettered messages (as `trawl redrive PLATFORM --job JOB`)."""
        job_id = _job_id(request)
        body = await request.body()
        form = parse_qs(body[:FORM_LIMIT].decode("utf-8", "replace"))
        given = request.headers.get("x-trawl-form-token") or next(iter(form.get("form_token", [])), None)
        if not self.access.has_form_token(given):
            return PlainTextResponse("This form is not from this dashboard.\n", status_code=403)
        try:
            summary = await run_in_threadpool(job_status, self.stack, job_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        if not summary.platform:
            raise HTTPException(409, f"job {job_id} has no platform: nothing to re-drive")
        result = await run_in_threadpool(redrive, self.stack, summary.platform, job_id)
        self.redriven[job_id] = time.monotonic()
        return RedirectResponse(f"/jobs/{job_id}?moved={result.moved}", status_code=303)

    def rejects(self, request: Request) -> Response:
        job_id = _job_id(request)
        s3 = self.stack.endpoint.client("s3")
        try:
            body = s3.get_object(Bucket=self.stack.bucket, Key=f"jobs/{job_id}/rejects.csv")["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise HTTPException(404, f"job {job_id} has no rejects.csv") from exc
        disposition = f'attachment; filename="{job_id}-rejects.csv"'
        return Response(body, media_type="text/csv", headers={"content-disposition": disposition})

    def _records_prefix(self, job_id: str) -> str:
        summary = job_status(self.stack, job_id)
        if not summary.output_prefix:
            raise HTTPException(404, f"job {job_id} has no output")
        return summary.output_prefix.split("/", 3)[3] + f"{job_id}-"

    def records(self, request: Request) -> Response:
        """The job's output objects, a page of names at a time, each a link to the object."""
        job_id = _job_id(request)
        try:
            prefix = self._records_prefix(job_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        after = request.query_params.get("after")
        names, more = pages.record_names(self.stack, prefix, after)
        return self.render(
            request, "records.html", nav="jobs", job_id=job_id, prefix=prefix, names=names, more=more
        )

    def record(self, request: Request) -> Response:
        job_id = _job_id(request)
        name = str(request.path_params["name"])
        if not RECORD_NAME.fullmatch(name) or not name.startswith(f"{job_id}-"):
            raise HTTPException(404, "not a record of this job")
        try:
            prefix = self._records_prefix(job_id)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from exc
        key = prefix.rsplit("/", 1)[0] + "/" + name
        s3 = self.stack.endpoint.client("s3")
        try:
            body = s3.get_object(Bucket=self.stack.bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey as exc:
            raise HTTPException(404, f"no record {name}") from exc
        return Response(body, media_type="text/plain; charset=utf-8")

    # -- queues

    def queues_context(self) -> dict[str, Any]:
        return {"queues": pages.queue_stats(self.stack), "poll_ms": POLL_QUEUES_MS}

    def queues(self, request: Request) -> Response:
        return self.render(request, "queues.html", nav="queues", **self.queues_context())

    def queues_fragment(self, request: Request) -> Response:
        return self.render(request, "_queues.html", **self.queues_context())

    # -- errors

    def not_found(self, request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        return self.render(request, "error.html", status=status, message=detail)

    def aws_error(self, request: Request, exc: Exception) -> Response:
        message = f"The stack did not answer: {type(exc).__name__}: {exc}"
        return self.render(request, "error.html", status=502, message=message)


def create_app(stack: Stack, access: Access) -> Starlette:
    board = Dashboard(stack, access)
    routes = [
        Route("/", board.jobs),
        Route("/_/jobs", board.jobs_fragment),
        Route("/jobs/{job_id}", board.job),
        Route("/_/jobs/{job_id}", board.job_fragment),
        Route("/jobs/{job_id}/redrive", board.redrive, methods=["POST"]),
        Route("/jobs/{job_id}/rejects.csv", board.rejects),
        Route("/jobs/{job_id}/records", board.records),
        Route("/jobs/{job_id}/records/{name}", board.record),
        Route("/queues", board.queues),
        Route("/_/queues", board.queues_fragment),
        Mount("/static", StaticFiles(packages=[("trawl.ui", "static")]), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, access=access)],
        exception_handlers={
            HTTPException: board.not_found,
            ClientError: board.aws_error,
            BotoCoreError: board.aws_error,
        },
    )
