"""What both upstreams share: one httpx.AsyncClient per container (TLS verified, explicit
timeouts), calls that respect the invocation's deadline, and the first sorting of answers.

Only an answer in the API's own error shape can mean something about the item; that is handed
to the platform's adapter as ApiError. Everything else is decided here, the same for both
APIs: 429/503 throttled, 5xx unavailable, and any other error answer (an HTML page, an empty
body, a redirect) a configuration problem, which is retried and never becomes a permanent
status."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from workers.upstream import DeadlineReached, Misconfigured, Throttled, Unavailable

if TYPE_CHECKING:
    from workers.ratelimit import RateLimiter

USER_AGENT = "trawl/0.1 (+https://github.com/trawl)"
DOMAIN_LIMIT = "/limits/over-domain-limit"  # Zyte's 429 for one website's limit, not the key's
# A 429 is waited out within the invocation this many times for one call, then the item goes
# back to the queue with backoff; without a rate budget the waits grow from THROTTLE_WAIT_S.
MAX_THROTTLED_WAITS = 6
THROTTLE_WAIT_S = 0.5
MIN_CALL_S = 1.0  # no call starts with less than this left before the deadline margin


def make_client(connect_timeout_s: float, read_timeout_s: float, in_flight: int = 10) -> httpx.AsyncClient:
    """`in_flight`: the calls one invocation makes at once (a connection each, and some spare)."""
    return httpx.AsyncClient(
        verify=True,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=max(50, in_flight + 10), max_keepalive_connections=20),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


@dataclass(frozen=True)
class Api:
    """How to recognise one API's own answers: its name (for messages), the setting that holds
    its URL (so a configuration problem names what to fix), and its error body's shape."""

    name: str
    url_setting: str
    error_shape: Callable[[object], bool]


class ApiError(Exception):
    """A 4xx in the API's own error shape (429 aside): the adapter says what it means."""

    def __init__(self, status: int, body: dict[str, Any], host: str) -> None:
        super().__init__(f"HTTP {status} from {host}")
        self.status = status
        self.body = body
        self.host = host


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _not_the_api(api: Api, response: httpx.Response, what: str) -> Misconfigured:
    content_type = response.headers.get("Content-Type", "no content type").split(";")[0]
    return Misconfigured(
        f"{what} from {response.request.url.host} is not {api.name}'s answer "
        f"({content_type}, {len(response.content)} bytes): check {api.url_setting}",
        _retry_after(response),
    )


def sort_answer(api: Api, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a 2xx answer, or the exception for any other one."""
    status = response.status_code
    host = response.request.url.host
    if status in (429, 503):
        # Keyed on the problem type, never on the message's words.
        limit = (_json_object(response) or {}).get("type")
        scope = "domain" if limit == DOMAIN_LIMIT else "user"
        raise Throttled(f"HTTP {status} from {host} ({limit or 'no type'})", _retry_after(response), scope)
    if status >= 500:
        raise Unavailable(f"HTTP {status} from {host}", _retry_after(response))
    if 300 <= status < 400:
        location = response.headers.get("Location", "nowhere")
        raise Misconfigured(f"HTTP {status} redirect from {host} to {location}: check {api.url_setting}")
    body = _json_object(response)
    if status >= 400:
        if body is not None and api.error_shape(body):
            raise ApiError(status, body, host)
        raise _not_the_api(api, response, f"HTTP {status}")
    if body is None:
        raise _not_the_api(api, response, f"HTTP {status}")
    return body


class Budget:
    """Time left in this invocation, and the API key's rate budget: no call starts that could
    outlive the invocation, or above the rate. `for_item()` gives each item a view of its own
    that counts the calls it made and how many were throttled."""

    def __init__(
        self,
        remaining_ms: Callable[[], int],
        margin_ms: int,
        read_timeout_s: float,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._remaining_ms = remaining_ms
        self._margin_ms = margin_ms
        self._read_timeout_s = read_timeout_s
        self.limiter = limiter
        self.calls = 0
        self.throttled = 0

    def for_item(self) -> Budget:
        return Budget(self._remaining_ms, self._margin_ms, self._read_timeout_s, self.limiter)

    def seconds_left(self) -> float:
        """Seconds until the last moment a call may start."""
        return (self._remaining_ms() - self._margin_ms) / 1000 - MIN_CALL_S

    def timeout(self) -> float:
        """Seconds a call may take, or DeadlineReached when too little is left to start one."""
        left = (self._remaining_ms() - self._margin_ms) / 1000
        if left < MIN_CALL_S:
            raise DeadlineReached("too little time left in this invocation to start a call")
        return min(self._read_timeout_s, left)

    async def start_call(self) -> float:
        """Wait for the rate budget's token, then the timeout the call may take."""
        self.timeout()
        if self.limiter is not None:
            await self.limiter.acquire(self.seconds_left)
        timeout = self.timeout()
        self.calls += 1
        return timeout

    async def was_throttled(self, failure: Throttled, waits: int) -> float | None:
        """A call answered 429/503: slow the key (or the website) down for every worker, and say
        how long to wait before calling again, or None when this invocation cannot wait."""
        self.throttled += 1
        if self.limiter is not None:
            await self.limiter.throttled(failure.scope)
            wait = 0.0  # the budget paces the next call
        else:
            wait = THROTTLE_WAIT_S * 2**waits * random.uniform(0.5, 1.0)
        if failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        if waits >= MAX_THROTTLED_WAITS or wait >= self.seconds_left():
            return None
        return wait


async def request_json(
    client: httpx.AsyncClient, budget: Budget, api: Api, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    """One upstream call. A transient failure is retried once in-process; a 429 is waited out
    while the invocation has time (a throttled answer is free and asks for exactly that), so it
    costs the item no receive of its own. Longer waits are the queue's job (visibility backoff)."""
    retried_unavailable, throttled_waits = False, 0
    while True:
        try:
            return await _request_once(client, budget, api, method, url, **kwargs)
        except Unavailable:
            if retried_unavailable:
                raise
            retried_unavailable = True
            await asyncio.sleep(random.uniform(0.05, 0.25))
        except Throttled as failure:
            wait = await budget.was_throttled(failure, throttled_waits)
            if wait is None:
                raise
            throttled_waits += 1
            await asyncio.sleep(wait)


async def _request_once(
    client: httpx.AsyncClient, budget: Budget, api: Api, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    timeout = await budget.start_call()
    host = httpx.URL(url).host
    try:
        response = await client.request(method, url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        raise Unavailable(f"timed out after {timeout:.1f} s calling {host}", reason="timeout") from exc
    except httpx.TransportError as exc:
        raise Unavailable(f"{type(exc).__name__} calling {host}", reason="connection") from exc
    return sort_answer(api, response)
