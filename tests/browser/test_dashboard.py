"""The dashboard in headless Chromium, on the stack of one `trawl up` started as a user starts
it, with faults on so that items dead-letter: the jobs page lists the job; the job page follows
it to the ledger's final numbers, charts its throughput, lists its dead-lettered items and, once
the sandbox is healed, re-drives them to done. Pages of other origins and other host names get
nothing from it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from typer.testing import CliRunner

from tests.browser.conftest import REBOUND_HOST
from trawl.cli import app
from trawl.stack.describe import Stack, describe_stack
from trawl.stack.endpoint import Endpoint
from trawl.stack.ops import dead_lettered_items, job_status, recent_jobs
from trawl.stack.running import UpState
from trawl.stack.submit import AttachedSession, submit

# 500s on 70% of upstream calls: with two receives per item, some items dead-letter.
FAULTS = "500=0.7"
NAMES = [f"dash{n:02d}" for n in range(56)] + ["ghost_dash1", "ghost_dash2", "private_dash"]
COUNTS = ["rows", "enqueued", "duplicates", "rejected", "written_ok", "written_permanent"]
COUNTS += ["dead_lettered", "in_flight", "records"]


@pytest.fixture(scope="module")
def up(home: Path) -> Iterator[tuple[UpState, Stack]]:
    """`trawl up` in a process of its own, found through its state file, as other commands find it."""
    env = os.environ | {"TRAWL_HOME": str(home)}
    flags = ["--faults", FAULTS, "--latency-ms", "200", "--parameter", "MaxReceiveCount=2"]
    command = [sys.executable, "-m", "trawl.cli", "up", *flags]
    with (home / "up.log").open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 90
            while not (home / "up.json").exists():
                assert proc.poll() is None and time.monotonic() < deadline, (home / "up.log").read_text()
                time.sleep(0.2)
            state = UpState(**json.loads((home / "up.json").read_text(encoding="utf-8")))
            endpoint = Endpoint(url=state.endpoint_url, lambda_url=state.lambda_url)
            yield state, describe_stack(endpoint, state.stack_name, with_functions=False)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def origin_of(state: UpState) -> str:
    assert state.ui_url is not None
    return state.ui_url.split("/?", 1)[0]


def count(page: Page, name: str) -> str:
    return page.locator(f'#job [data-count="{name}"]').inner_text()


def job_state(page: Page) -> str:
    return page.locator("#job h1 [data-state]").inner_text()


def mid_run(page: Page) -> bool:
    return bool(page.locator("table.reasons").count())


def test_the_dashboard_follows_a_faulty_job_and_redrives_it(
    up: tuple[UpState, Stack], home: Path, context: BrowserContext, screenshots: Path, tmp_path: Path
) -> None:
    state, stack = up
    assert state.ui_url is not None
    assert f"  dashboard     {state.ui_url}" in (home / "up.log").read_text()
    upload = tmp_path / "tiktok_dashboard.csv"
    upload.write_text("username\n" + "\n".join([*NAMES, "not a handle!", NAMES[0]]) + "\n", encoding="utf-8")
    job_id = submit(AttachedSession(stack), upload, "tiktok", "account")
    deadline = time.monotonic() + 30
    while job_id not in [job["job_id"] for job in recent_jobs(stack)]:  # its producer has begun
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)

    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    landed = page.goto(state.ui_url)
    assert landed is not None and landed.headers["x-frame-options"] == "DENY"
    assert "token" not in page.url  # into the cookie, out of the address bar
    row = page.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_contain_text("tiktok/account", timeout=15_000)
    expect(row).to_contain_text("input/tiktok/account/tiktok_dashboard.csv")

    row.locator("a").click()
    expect(page).to_have_url(re.compile(f"/jobs/{job_id}$"))
    deadline = time.monotonic() + 60  # a picture of the run: items done, and failures retried
    while job_state(page) == "running" and not (count(page, "written_ok") != "0" and mid_run(page)):
        assert time.monotonic() < deadline, "no item ended"
        time.sleep(0.1)
    page.screenshot(path=str(screenshots / "ui-job.png"), full_page=True)

    # The page refreshes itself until the job settles: failed, with items in the DLQ.
    expect(page.locator("#job h1 [data-state]")).to_have_text("failed", timeout=90_000)
    summary = job_status(stack, job_id)
    assert summary.dead_lettered > 0 and summary.written_ok > 0
    assert {name: count(page, name) for name in COUNTS} == {
        name: f"{getattr(summary, name):,}" for name in COUNTS
    }

    chart = page.locator("#throughput")
    points = json.loads(chart.get_attribute("data-chart") or "{}")
    assert points["x"] and round(sum(points["ended"]) * 60) == summary.enqueued, points
    expect(chart.locator("canvas")).to_have_count(1)  # drawn by uPlot

    listed = page.locator("table.dlq tbody tr").evaluate_all("rows => rows.map(r => r.dataset.item)")
    ledger = [item["item_key"] for item in dead_lettered_items(stack, job_id)]
    assert sorted(listed) == sorted(ledger) and len(ledger) == summary.dead_lettered
    expect(page.locator("table.dlq")).to_contain_text("upstream 5xx")

    page.goto(origin_of(state) + "/")
    expect(page.locator(f'tr[data-job="{job_id}"] [data-state]')).to_have_text("failed")
    page.set_viewport_size({"width": 1280, "height": 320})  # as tall as the page, no taller
    page.screenshot(path=str(screenshots / "ui-jobs.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    healed = CliRunner().invoke(app, ["faults", ""], env={"TRAWL_HOME": str(home)})
    assert healed.exit_code == 0, healed.output
    page.goto(f"{origin_of(state)}/jobs/{job_id}")
    asked: list[str] = []

    def confirm(dialog: object) -> None:
        asked.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.once("dialog", confirm)
    page.locator("#redrive").click()
    expect(page.locator(".notice")).to_contain_text(f"Re-drive moved {summary.dead_lettered} message")
    assert asked == [
        f"Move this job's {summary.dead_lettered} dead-lettered messages back to the tiktok queue?"
    ]
    expect(page.locator("#job h1 [data-state]")).to_have_text("done", timeout=90_000)
    assert count(page, "dead_lettered") == "0"
    assert count(page, "written_ok") == f"{len(NAMES) - 3:,}"
    assert job_status(stack, job_id).state == "done"
    assert refused == []  # no inline script or style anywhere


class _Foreign(BaseHTTPRequestHandler):
    """Another site's page, on another port of 127.0.0.1 (the same *site*, for cookies): it tries
    to read the dashboard's jobs and to post a re-drive to it."""

    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_other_pages_and_host_names_get_nothing(up: tuple[UpState, Stack], context: BrowserContext) -> None:
    state, _ = up
    assert state.ui_url is not None
    origin = origin_of(state)
    port = origin.rsplit(":", 1)[1]
    page = context.new_page()
    page.goto(state.ui_url)  # the user's own tab: this browser now holds the dashboard's cookie
    (cookie,) = context.cookies(origin)
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (f"trawl_ui_{port}", True, "Strict")

    _Foreign.page = f"""<!doctype html><title>foreign</title>
        <form method="post" action="{origin}/jobs/0123456789abcdef/redrive">
          <input name="form_token" value="guessed"><button id="go">go</button></form>
        <script>fetch("{origin}/", {{credentials: "include"}}).then(
          r => r.text().then(t => document.title = "read " + t.length), () => document.title = "blocked");
        </script>""".encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        foreign = context.new_page()
        foreign.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        expect(foreign).to_have_title("blocked")  # the answer cannot be read from another origin
        with foreign.expect_response(lambda r: r.url.endswith("/redrive")) as answer:
            foreign.locator("#go").click()
        assert answer.value.status == 403
        expect(foreign.locator("body")).to_contain_text("Open the dashboard with the URL")
    finally:
        server.shutdown()

    rebound = page.goto(f"http://{REBOUND_HOST}:{port}/")  # DNS rebinding: a name resolving here
    assert rebound is not None and rebound.status == 421

    jar = {cookie["name"]: cookie["value"]}
    with httpx.Client(base_url=origin, cookies=jar) as client:
        # With the cookie, from this origin, but without the form's token.
        refused = client.post("/jobs/0123456789abcdef/redrive", headers={"origin": origin})
        assert refused.status_code == 403 and "not from this dashboard" in refused.text
        assert client.get("/", headers={"host": f"localhost:{port}"}).status_code == 421
    assert httpx.post(f"{origin}/jobs/0123456789abcdef/redrive", data={"form_token": "x"}).status_code == 403
    assert httpx.get(f"{origin}/").status_code == 403  # no cookie, no token
    assert httpx.get(f"{origin}/?token=wrong").status_code == 403
