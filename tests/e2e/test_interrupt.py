"""Ctrl-C during `trawl run` on a private stack: the command says what happened to the job,
exits 130, and leaves no process behind (no moto server, no worker environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in map(int, children.read_text().split()):
            found |= {child} | _descendants(child)
    return found


def test_ctrl_c_stops_the_run_and_its_processes(tmp_path: Path) -> None:
    csv_path = tmp_path / "many.csv"
    csv_path.write_text("username\n" + "".join(f"slow_{n:04d}\n" for n in range(2000)))
    env = os.environ | {"TRAWL_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "trawl.cli", "run", str(csv_path), "--platform", "tiktok"]
    command += ["--kind", "account", "--latency-ms", "200", "--data-dir", str(tmp_path / "data")]
    run = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal starts it
    )
    children: set[int] = set()
    deadline = time.monotonic() + 60
    while not any(b"trawl.local.container" in _cmdline(pid) for pid in children):
        assert run.poll() is None and time.monotonic() < deadline, "no worker started"
        time.sleep(0.2)
        children = _descendants(run.pid)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = run.communicate(timeout=60)

    assert run.returncode == 130
    assert "interrupted: job " in err and "stopped with this command's private stack" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data").exists()  # nothing half-copied
    time.sleep(1)
    left = [pid for pid in children if Path(f"/proc/{pid}").exists() and _state(pid) != "Z"]
    assert left == [], f"processes left running after Ctrl-C: {left}"


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
