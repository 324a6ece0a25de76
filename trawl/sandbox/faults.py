"""Injected faults: error rates per kind, drawn deterministically per (method, path, target,
attempt), and the error answers each API gives for them.

Also the upstreams' rate limits, which the real APIs enforce and a pipeline must live within:
``rpm=N`` caps each API key at N requests per sliding 60 s window (per API), and
``domain-rpm=PLATFORM:N`` caps Zyte requests for one marketplace's URLs across keys. Only
accepted requests count, so a client that keeps retrying into a limit does not stay locked out;
a request over a limit is answered 429 before any fault is drawn for it."""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from models.normalise import PRODUCT_HOSTS
from trawl.sandbox.common import PROBLEM_JSON, Api, Reply, phrase
from trawl.sandbox.tikapi import tikapi_error
from trawl.sandbox.zyte import problem

FAULT_KINDS: tuple[str, ...] = (
    "401", "403", "429", "500", "502", "503", "520", "timeout", "reset", "slow",
)  # fmt: skip


PLATFORMS: tuple[str, ...] = tuple(PRODUCT_HOSTS)  # what domain-rpm names: tokopedia, shopee, lazada


DEFAULT_SLOW_MS = 1500  # how long a "slow" call (a latency spike) waits on top of latency_ms


CALL_LOG_SIZE = 1_000_000  # requests call_log() keeps: a long `trawl up` must not grow without end


LIMIT_WINDOW_S = 60.0  # rpm and domain-rpm count the accepted requests of this sliding window


Scope = Literal["user", "domain"]  # which limit answered a request 429


_API_BY_PATH: dict[str, Api] = {"/v1/extract": "zyte", "/public/check": "tikapi", "/public/posts": "tikapi"}


_COUNT = re.compile(r"[0-9]+")


def _check_rate(kind: str, rate: float, part: str) -> None:
    if kind not in FAULT_KINDS:
        known = ", ".join(FAULT_KINDS)
        raise ValueError(
            f"fault {part!r}: unknown kind {kind!r} (known: {known}; limits: rpm=N, domain-rpm=PLATFORM:N)"
        )
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault {part!r}: rate must be between 0 and 1")


def _count(value: str, what: str, part: str) -> int:
    if not _COUNT.fullmatch(value) or int(value) < 1:
        raise ValueError(
            f"fault {part!r}: {what} must be a positive integer (requests per minute), got {value!r}"
        )
    return int(value)


def _check_limits(rpm: int | None, domain_rpm: dict[str, int]) -> None:
    if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1):
        raise ValueError(f"rpm must be a positive integer (requests per minute), got {rpm!r}")
    for platform, limit in domain_rpm.items():
        if platform not in PLATFORMS:
            raise ValueError(f"domain-rpm: unknown platform {platform!r} (known: {', '.join(PLATFORMS)})")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"domain-rpm for {platform} must be a positive integer, got {limit!r}")


@dataclass(frozen=True)
class Call:
    """One request served on an upstream path: when it came (epoch seconds) and for what, and
    how the sandbox answered it. Only the first four fields are needed to build one by hand."""

    at: float
    method: str
    path: str
    target: str
    status: int = 200  # the HTTP status answered; 0 when none was (a reset, or the server stopped)
    api: Api | None = None  # taken from the path when not given
    throttled: Scope | None = None  # the limit that answered it 429, if one did
    platform: str | None = None  # the marketplace of a Zyte call's URL, if it is one
    clock_at: float | None = None  # the limits' clock when it came: what their windows measure

    def __post_init__(self) -> None:
        if self.api is None:
            object.__setattr__(self, "api", _API_BY_PATH.get(self.path))


@dataclass(frozen=True)
class Faults:
    """Injected error rate per fault kind (0..1, adding up to at most 1) and a fixed latency;
    a "slow" call waits `slow_ms` on top of that latency. `rpm` limits each API key's requests
    per minute, `domain_rpm` the Zyte requests per minute for a platform's URLs (None / absent:
    no limit)."""

    rates: dict[str, float]
    latency_ms: int = 0
    seed: int = 0
    slow_ms: int = DEFAULT_SLOW_MS
    rpm: int | None = None
    domain_rpm: dict[str, int] = field(default_factory=dict)

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
        _check_limits(self.rpm, self.domain_rpm)
        # private copies: the caller's dicts must not change a running server's faults behind its lock
        object.__setattr__(self, "rates", {k: float(v) for k, v in self.rates.items()})
        object.__setattr__(self, "domain_rpm", dict(self.domain_rpm))

    def __hash__(self) -> int:  # the dict fields would make the generated hash raise
        return hash((self.spec(), self.latency_ms, self.seed, self.slow_ms))

    @classmethod
    def parse(cls, spec: str, latency_ms: int = 0, seed: int = 0, slow_ms: int = DEFAULT_SLOW_MS) -> Faults:
        """Read "429=0.1,500=0.05,timeout=0.02,rpm=600,domain-rpm=shopee:200"; "" means no faults
        and no limits."""
        rates: dict[str, float] = {}
        rpm: int | None = None
        domain_rpm: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, value = (s.strip() for s in part.partition("="))
            if kind == "rpm":
                if rpm is not None:
                    raise ValueError(f"fault {part!r}: rpm is given twice")
                rpm = _count(value, "rpm", part)
            elif kind == "domain-rpm":
                platform, colon, limit = (s.strip() for s in value.partition(":"))
                if not colon:
                    raise ValueError(
                        f"fault {part!r}: expected domain-rpm=PLATFORM:N, e.g. domain-rpm=shopee:200"
                    )
                if platform not in PLATFORMS:
                    known = ", ".join(PLATFORMS)
                    raise ValueError(f"fault {part!r}: unknown platform {platform!r} (known: {known})")
                if platform in domain_rpm:
                    raise ValueError(f"fault {part!r}: domain-rpm for {platform} is given twice")
                domain_rpm[platform] = _count(limit, f"domain-rpm for {platform}", part)
            elif not sep:
                raise ValueError(f"fault {part!r}: expected KIND=RATE, e.g. 429=0.1")
            else:
                try:
                    rate = float(value)
                except ValueError:
                    raise ValueError(f"fault {part!r}: rate {value!r} is not a number") from None
                if kind in rates:
                    raise ValueError(f"fault {part!r}: {kind} is given twice")
                _check_rate(kind, rate, part)
                rates[kind] = rate
        return cls(rates, latency_ms=latency_ms, seed=seed, slow_ms=slow_ms, rpm=rpm, domain_rpm=domain_rpm)

    def spec(self) -> str:
        """The canonical spec string, which `parse` reads back."""
        parts = [f"{kind}={self.rates[kind]:g}" for kind in FAULT_KINDS if self.rates.get(kind)]
        if self.rpm is not None:
            parts.append(f"rpm={self.rpm}")
        parts += [f"domain-rpm={p}:{self.domain_rpm[p]}" for p in PLATFORMS if p in self.domain_rpm]
        return ",".join(parts)

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


class Limiter:
    """The sliding windows behind rpm and domain-rpm: when each accepted request came, per
    (API, key) and per platform. It keeps them whatever the limits are, so a limit set at run
    time sees the last minute's real traffic. Not thread-safe: the server calls it under its lock."""

    def __init__(self, window_s: float = LIMIT_WINDOW_S) -> None:
        self.window_s = window_s
        self._users: dict[tuple[str, str], deque[float]] = {}
        self._domains: dict[str, deque[float]] = {}

    def admit(self, faults: Faults, now: float, api: Api, key: str, platform: str | None) -> Scope | None:
        """The limit this request at `now` is over ("user" is checked first), or None; an
        accepted request is counted in its windows, a rejected one in none."""
        user = self._prune(self._users.setdefault((api, key), deque()), now)
        domain = None
        if api == "zyte" and platform:
            domain = self._prune(self._domains.setdefault(platform, deque()), now)
        if faults.rpm is not None and len(user) >= faults.rpm:
            return "user"
        limit = faults.domain_rpm.get(platform or "")
        if domain is not None and limit is not None and len(domain) >= limit:
            return "domain"
        user.append(now)
        if domain is not None:
            domain.append(now)
        return None

    def _prune(self, times: deque[float], now: float) -> deque[float]:
        while times and now - times[0] >= self.window_s:
            times.popleft()
        return times


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


_ZYTE_LIMITS: dict[Scope, tuple[str, str, str]] = {  # scope -> problem type, title, detail
    "user": ("/limits/over-user-limit", "User Rate Limit Exceeded",
             "The rate of requests exceeds the rate limit of the user."),
    "domain": ("/limits/over-domain-limit", "Domain Rate Limit Exceeded",
               "The rate of requests to this website exceeds its rate limit."),
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


def limit_reply(scope: Scope, api: Api) -> Reply:
    """The 429 for a request over a rate limit; without Retry-After, which neither API documents
    for its limits."""
    if api == "tikapi":
        return tikapi_error(429, "Rate limit exceeded")
    return problem(429, *_ZYTE_LIMITS[scope])


@dataclass(frozen=True)
class WindowPeak:
    """What max_calls_in_window found."""

    most: int  # the most accepted calls in any window of window_s
    accepted: int  # calls not answered 429
    rejected: int  # calls answered 429, by a limit or by an injected fault
    throttled: int  # of those, the ones a limit answered


def max_calls_in_window(
    calls: Iterable[Call],
    window_s: float = LIMIT_WINDOW_S,
    api: Api | None = None,
    platform: str | None = None,
) -> WindowPeak:
    """The peak rate of accepted (non-429) calls of `api` (None: both), for `platform`'s URLs if
    given, over any window of `window_s` (half-open, as the limits count), exactly from the
    timestamps: the limits' clock readings when every call has one, else `at`. An injected 429
    fault counts as rejected here, though the limits counted it as accepted."""
    chosen = [
        c for c in calls if (api is None or c.api == api) and (platform is None or c.platform == platform)
    ]
    accepted = [c for c in chosen if c.status != 429]
    clocked = all(c.clock_at is not None for c in accepted)
    times = sorted((c.clock_at if clocked and c.clock_at is not None else c.at) for c in accepted)
    most = start = 0
    for end, time_ in enumerate(times):
        while time_ - times[start] >= window_s:
            start += 1
        most = max(most, end - start + 1)
    throttled = sum(1 for c in chosen if c.throttled is not None)
    return WindowPeak(most, len(accepted), len(chosen) - len(accepted), throttled)
