"""`trawl run` as a user's terminal runs it, in a process of its own: the handlers' JSON log
lines stay out of its output unless asked for, and Ctrl-C says what happened to the job, exits
130, and leaves no process behind (no moto server, no worker environment)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import process_state

# The installed console script, as users run it (`python -m trawl.cli` imports in another order).
TRAWL = str(Path(sys.executable).with_name("trawl"))


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
    command = [TRAWL, "run", str(csv_path), "--platform", "tiktok", "--kind", "account"]
    command += ["--latency-ms", "200", "--data-dir", str(tmp_path / "data")]
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
    while not any(_is_tiktok_worker(_cmdline(pid)) for pid in children):
        assert run.poll() is None and time.monotonic() < deadline, "no worker started"
        time.sleep(0.2)
        children = _descendants(run.pid)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = run.communicate(timeout=60)

    assert run.returncode == 130
    assert "interrupted: job " in err and "stopped with this command's private stack" in err
    assert "Traceback" not in err, err[-3000:]
    assert not (tmp_path / "data").exists()  # nothing half-copied
    time.sleep(1)
    left = [pid for pid in children if process_state(pid) not in ("gone", "Z")]
    assert left == [], f"processes left running after Ctrl-C: {left}"


def _is_tiktok_worker(cmdline: bytes) -> bool:
    """An execution environment's process: `python -I -S .../bootstrap.py <function name>`."""
    return b"bootstrap.py\0" in cmdline and cmdline.endswith(b"-worker-tiktok\0")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_handler_logs_show_only_with_verbose(tmp_path: Path) -> None:
    csv_path = tmp_path / "few.csv"
    csv_path.write_text("username\nquiet_one\nquiet_two\n")
    # A user's shell: none of the Powertools settings tests/conftest.py gives the test process.
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env["TRAWL_HOME"] = str(tmp_path / "home")
    command = [TRAWL, "run", str(csv_path), "--platform", "tiktok", "--kind", "account"]
    command += ["--data-dir", str(tmp_path / "data")]

    quiet = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    loud = subprocess.run([*command, "--verbose"], env=env, capture_output=True, text=True, timeout=120)

    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "items: ok 2 · permanent 0" in quiet.stdout
    assert '"level"' not in quiet.stderr + quiet.stdout
    assert '"message":"job enqueued"' in loud.stderr  # the producer's line, in this process
    assert '"message":"batch done"' in loud.stderr  # a worker environment's line
