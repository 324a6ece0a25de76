"""The embedded AWS of the local default: a moto server on 127.0.0.1, on a free port."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import tempfile
from typing import IO

from trawl.stack.endpoint import Endpoint


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedAws:
    """moto's server on a free loopback port, in a child process (trawl.local.motoserver).

    The child binds port 0 and reports the port the OS gave it, so two stacks started at the
    same moment (parallel tests) can never end up talking to each other's server."""

    def __init__(self) -> None:
        self.port = 0
        self.endpoint = Endpoint(url=None)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> EmbeddedAws:
        # Its errors go to a file, not a pipe: nobody reads a pipe while the server runs.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self._process = subprocess.Popen(
            [sys.executable, "-m", "trawl.local.motoserver", "0"],
            stdin=subprocess.PIPE,  # never written: its EOF tells the server this process ended
            # Its own process group: Ctrl-C in the terminal goes to this process, which stops the
            # server once nothing needs AWS any more.
            process_group=0,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout_s)
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(
                f"the embedded AWS server did not start in {timeout_s:.0f} s:\n{self._errors()}"
            )
        self.port = int(line.split()[1])
        self.endpoint = Endpoint(url=f"http://127.0.0.1:{self.port}")
        return self

    def _errors(self) -> str:
        if self._log is None or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._process is not None:
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._log is not None:
            self._log.close()
