"""`trawl up`'s state: where the long-running local stack listens, so that other trawl commands
(run, demo, status, redrive, query, faults) can find and use it from another process."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit


def state_file() -> Path:
    return Path(os.environ.get("TRAWL_HOME", Path.home() / ".trawl")) / "up.json"


@dataclass(frozen=True)
class UpState:
    endpoint_url: str
    sandbox_url: str
    stack_name: str
    pid: int
    lambda_url: str | None = None  # the local Lambda stand-in's Invoke API
    ui_url: str | None = None  # the dashboard `trawl up` serves, with its token (trawl/ui/)

    def save(self) -> Path:
        """Readable by this user only: it holds the dashboard's token (in `ui_url`)."""
        path = state_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file left by an earlier version may have been wider
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(self), indent=2))
        return path


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def running_stack() -> UpState | None:
    """The `trawl up` stack if one is running (its state file exists and it still listens)."""
    path = state_file()
    try:
        state = UpState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return state if _listening(state.endpoint_url) else None


def clear(pid: int) -> None:
    path = state_file()
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass
