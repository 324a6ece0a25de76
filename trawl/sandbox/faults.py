"""Injected faults: error rates per kind, drawn deterministically per (method, path, target,
attempt), and the error answers each API gives for them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from trawl.sandbox.common import PROBLEM_JSON, Api, Reply, phrase
from trawl.sandbox.tikapi import tikapi_error
from trawl.sandbox.zyte import problem

FAULT_KINDS: tuple[str, ...] = (
    "401", "403", "429", "500", "502", "503", "520", "timeout", "reset", "slow",
)  # fmt: skip


DEFAULT_SLOW_MS = 1500  # how long a "slow" call (a latency spike) waits on top of latency_ms


CALL_LOG_SIZE = 1_000_000  # requests call_log() keeps: a long `trawl up` must not grow without end


def _check_rate(kind: str, rate: float, part: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {part!r}: unknown kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault {part!r}: rate must be between 0 and 1")


@dataclass(frozen=True)
class Call:
    """One request served on an upstream path: when it came (epoch seconds) and for what."""

    at: float
    method: str
    path: str
    target: str


@dataclass(frozen=True)
class Faults:
    """Injected error rate per fault kind (0..1, adding up to at most 1) and a fixed latency;
    a "slow" call waits `slow_ms` on top of that latency."""

    rates: dict[str, float]
    latency_ms: int = 0
    seed: int = 0
    slow_ms: int = DEFAULT_SLOW_MS

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            _check_rate(kind, rate, f"{kind}={rate}")
        total = sum(self.rates.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; at most 1 is possible")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if self.slow_ms < 0:
            raise ValueError(f"slow_ms must be >= 0, got {self.slow_ms}")
        # a private copy: the caller's dict must not change a running server's faults behind its lock
        object.__setattr__(self, "rates", {k: float(v) for k, v in self.rates.items()})

    def __hash__(self) -> int:  # the dict field would make the generated hash raise
        return hash((self.spec(), self.latency_ms, self.seed, self.slow_ms))

    @classmethod
    def parse(cls, spec: str, latency_ms: int = 0, seed: int = 0, slow_ms: int = DEFAULT_SLOW_MS) -> Faults:
        """Read "429=0.1,500=0.05,timeout=0.02"; "" means no faults."""
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, value = (s.strip() for s in part.partition("="))
            if not sep:
                raise ValueError(f"fault {part!r}: expected KIND=RATE, e.g. 429=0.1")
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"fault {part!r}: rate {value!r} is not a number") from None
            if kind in rates:
                raise ValueError(f"fault {part!r}: {kind} is given twice")
            _check_rate(kind, rate, part)
            rates[kind] = rate
        return cls(rates, latency_ms=latency_ms, seed=seed, slow_ms=slow_ms)

    def spec(self) -> str:
        """The canonical spec string, which `parse` reads back."""
        return ",".join(f"{kind}={self.rates[kind]:g}" for kind in FAULT_KINDS if self.rates.get(kind))

    def decide(self, method: str, path: str, target: str, attempt: int) -> str | None:
        """The fault kind for this call, or None; a pure function of the arguments and the seed."""
        digest = hashlib.sha256(f"{self.seed}:{method}:{path}:{target}:{attempt}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        cumulative = 0.0
        for kind in FAULT_KINDS:
            cumulative += self.rates.get(kind, 0.0)
            if draw < cumulative:
                return kind
        return None


_RETRY_AFTER = {"Retry-After": "1"}


_ZYTE_FAULTS: dict[str, tuple[str, str, str]] = {  # kind -> problem type, title, detail
    "401": ("/auth/key-not-found", "Authentication Key Not Found",
            "The authentication key is not valid or can't be matched."),
    "403": ("/auth/account-suspended", "Account Suspended", "The account is suspended; contact support."),
    "429": ("/limits/over-user-limit", "User Rate Limit Exceeded",
            "The rate of requests exceeds the rate limit of the user. Retry after the Retry-After delay."),
    "520": ("/download/temporary-error", "Temporary Downloading Error",
            "There is a downloading problem which might be temporary. Retry in 1 seconds."),
}  # fmt: skip


def fault_reply(kind: str, api: Api) -> Reply:
    """The answer for an injected fault (every kind but "reset", which sends nothing, and "slow",
    which is answered normally)."""
    status = 504 if kind == "timeout" else int(kind)
    headers = _RETRY_AFTER if status in (429, 503, 520) else {}
    if api == "tikapi":
        message = {401: "Invalid API key", 403: "Invalid API key", 429: "Rate limit exceeded"}.get(status)
        return tikapi_error(status, message or phrase(status), **headers)
    type_, title, detail = _ZYTE_FAULTS.get(kind, ("about:blank", phrase(status), phrase(status) + "."))
    return Reply(status, problem(status, type_, title, detail).body, PROBLEM_JSON, dict(headers))
