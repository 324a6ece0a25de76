"""What both upstreams share: one httpx.AsyncClient per container (TLS verified, explicit
timeouts), HTTP status -> domain exception, and calls that respect the invocation's deadline."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx

from workers.upstream import (
    BadCredentials,
    DeadlineReached,
    DomainRefused,
    Gone,
    InvalidTarget,
    NotFound,
    Throttled,
    Unavailable,
    UpstreamError,
)

USER_AGENT = "trawl/0.1 (+https://github.com/trawl)"


def make_client(connect_timeout_s: float, read_timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=True,
        timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def error_for(response: httpx.Response) -> UpstreamError:
    """The domain exception for an HTTP error status (the same table for TikAPI and Zyte)."""
    status = response.status_code
    where = f"HTTP {status} from {response.request.url.host}"
    if status in (429, 503):
        return Throttled(where, _retry_after(response))
    if status in (401, 402, 403):
        return BadCredentials(where)
    if status == 404:
        return NotFound(where)
    if status == 451:
        return DomainRefused(where)
    if status in (400, 422):
        return InvalidTarget(where)
    if status == 521:
        return Gone(where)
    return Unavailable(where, _retry_after(response))


class Budget:
    """Time left in this invocation; no call starts that could outlive it."""

    def __init__(self, remaining_ms: Callable[[], int], margin_ms: int, read_timeout_s: float) -> None:
        self._remaining_ms = remaining_ms
        self._margin_ms = margin_ms
        self._read_timeout_s = read_timeout_s

    def timeout(self) -> float:
        """Seconds a call may take, or DeadlineReached when too little is left to start one."""
        left = (self._remaining_ms() - self._margin_ms) / 1000
        if left < 1.0:
            raise DeadlineReached("too little time left in this invocation to start a call")
        return min(self._read_timeout_s, left)


async def request_json(
    client: httpx.AsyncClient, budget: Budget, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    """One upstream call, retried once in-process for a transient failure when time allows;
    longer waits are the queue's job (visibility backoff), not this invocation's."""
    for attempt in (1, 2):
        try:
            return await _request_once(client, budget, method, url, **kwargs)
        except Unavailable:
            if attempt == 2:
                raise
            await asyncio.sleep(random.uniform(0.05, 0.25))
    raise AssertionError("unreachable")


async def _request_once(
    client: httpx.AsyncClient, budget: Budget, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    timeout = budget.timeout()
    try:
        response = await client.request(method, url, timeout=timeout, **kwargs)
    except httpx.TimeoutException as exc:
        raise Unavailable(f"timed out after {timeout:.1f} s calling {httpx.URL(url).host}") from exc
    except httpx.TransportError as exc:
        raise Unavailable(f"{type(exc).__name__} calling {httpx.URL(url).host}") from exc
    if response.status_code >= 400:
        raise error_for(response)
    try:
        body = response.json()
    except ValueError as exc:
        raise Unavailable(f"non-JSON answer from {httpx.URL(url).host}") from exc
    if not isinstance(body, dict):
        raise Unavailable(f"unexpected JSON from {httpx.URL(url).host}")
    return body
