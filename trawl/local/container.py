"""One warm Lambda execution environment in a process of its own:
`python -m trawl.local.container`, driven by the local runtime (trawl/local/runtime.py).

On Lambda every execution environment is a separate process, so concurrent invocations share
no interpreter. Locally the same holds: a worker's handler runs here, and the poller thread that
owns this process sends it SQS events over a pipe and gets back what the handler returned.
Protocol (multiprocessing.connection framing over the child's stdin/stdout): the parent sends
(FunctionInfo, environment), the child answers (True, None) once its deps are built; then each
event gets (True, result) or (False, traceback); None ends the process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from trawl.local.stack import FunctionInfo

# How long building a container's deps (imports, clients) may take; Lambda allows 10 s of init,
# and this leaves room for a loaded 2-core machine starting several environments at once.
INIT_TIMEOUT_S = 60.0


class ContainerDied(RuntimeError):
    """The execution environment's process ended while it held an invocation."""


class HandlerError(RuntimeError):
    """The handler raised; the message carries its traceback from the container process."""


class ProcessContainer:
    """The parent's handle on a container process (see the module docstring)."""

    def __init__(self, function: FunctionInfo, env: dict[str, str]) -> None:
        self.function = function
        # A process group of its own: Ctrl-C in the terminal reaches the runtime, which ends its
        # environments in order (None, or EOF on the pipe if the runtime itself is gone).
        self._process = subprocess.Popen(
            [sys.executable, "-m", "trawl.local.container"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            process_group=0,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._send = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()
        try:
            self._send.send((function, env))
            self._answer(INIT_TIMEOUT_S)  # deps built, as after a Lambda init phase
        except BaseException:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def invoke(self, event: dict[str, Any]) -> Any:
        """The handler's return value. Like Lambda, an invocation that outlives the function's
        timeout ends its environment: the process is killed and ContainerDied raised."""
        try:
            self._send.send(event)
        except OSError as exc:
            raise self._died() from exc
        return self._answer(self.function.timeout_s)

    def _answer(self, timeout_s: float) -> Any:
        try:
            if not self._recv.poll(timeout_s):
                self._process.kill()
                raise self._died(f"timed out after {timeout_s:g} s; its process was stopped")
            ok, value = self._recv.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        if not ok:
            raise HandlerError(f"{self.function.name} raised:\n{value}")
        return value

    def _died(self, why: str = "") -> ContainerDied:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)  # EOF can come a moment before the exit status
        why = why or f"its container process ended (exit code {self._process.poll()})"
        return ContainerDied(f"{self.function.name}: {why}")

    def kill(self) -> None:
        """End the process at once (SIGKILL), as a crashed execution environment ends."""
        self._process.kill()
        self._process.wait()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send.send(None)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._send.close()
        self._recv.close()


def main() -> None:
    # stdout is the channel to the parent; everything the handler prints goes to stderr.
    send = Connection(os.dup(1), readable=False)
    recv = Connection(os.dup(0), writable=False)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from trawl.local.runtime import Container

    function, env = recv.recv()
    try:
        container = Container(function, env)
    except BaseException:
        send.send((False, traceback.format_exc()))
        return
    send.send((True, None))
    while True:
        try:
            event = recv.recv()
        except EOFError:  # the parent is gone (killed): so is this environment
            return
        if event is None:
            return
        try:
            send.send((True, container.invoke(event)))
        except Exception:
            send.send((False, traceback.format_exc()))


if __name__ == "__main__":
    main()
