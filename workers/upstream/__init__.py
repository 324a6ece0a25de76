"""Adapters for the upstream APIs. Vendor errors become the few domain exceptions below,
chained with `from`; workers/batch.py alone decides what each means for the queue.

Every failure carries a `reason` from one small, fixed vocabulary, so the job ledger can count
failures by reason without the set of names growing with the error messages."""

from __future__ import annotations

from typing import ClassVar

RETRYABLE_REASONS = (
    "throttled",
    "upstream_5xx",
    "timeout",
    "connection",
    "configuration",
    "bad_credentials",
    "unparseable",
    "deadline",
    "storage",
    "rate_budget",
    "unexpected",
)


class UpstreamError(Exception):
    """Base of every failure an upstream call can end in."""


class Retryable(UpstreamError):
    reason = "unexpected"

    def __init__(self, message: str, retry_after: float | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if reason is not None:
            if reason not in RETRYABLE_REASONS:
                raise ValueError(f"unknown failure reason {reason!r}")
            self.reason = reason


class Throttled(Retryable):
    """429/503: the upstream asks us to slow down. `scope` says whose limit: "user" (the API
    key's, and what a 503 or a 429 without more means) or "domain" (one website's, Zyte's
    `/limits/over-domain-limit`)."""

    reason = "throttled"

    def __init__(self, message: str, retry_after: float | None = None, scope: str = "user") -> None:
        super().__init__(message, retry_after)
        self.scope = scope


class Unavailable(Retryable):
    """5xx, 520, timeouts, connection errors: try again later."""

    reason = "upstream_5xx"


class BadCredentials(Retryable):
    """A 401/403 about the key, or a key that cannot be read. Retryable: a rotated key fixes it."""

    reason = "bad_credentials"


class Misconfigured(Retryable):
    """An answer that is not the API's own: an HTML error page, an empty body, a redirect, or
    an API error trawl cannot act on. The endpoint (or a proxy in front of it) is wrong, so the
    item is never given a permanent status for it: it is retried, and ends in the DLQ to be
    re-driven once the configuration is fixed."""

    reason = "configuration"


class Unparseable(Retryable):
    """A 200 whose body lacks what identifies the item (a profile without `userInfo.user`, a
    Zyte answer without `product` where the site said 200)."""

    reason = "unparseable"


class DeadlineReached(Retryable):
    """Too little of the invocation is left to start the call."""

    reason = "deadline"


class Permanent(UpstreamError):
    """The item can never be fetched: written as a record with `status`, never retried."""

    status: ClassVar[str] = "unavailable"


class NotFound(Permanent):
    status = "not_found"


class Private(Permanent):
    status = "private"


class DomainRefused(Permanent):
    """trawl's own refusal: the host is not on the platform's allow-list."""

    status = "domain_refused"


class BadTarget(Permanent):
    """The upstream says, in its own error shape, that the target cannot be looked up."""

    status = "invalid_target"


class NotAProduct(Permanent):
    status = "not_a_product"


class Gone(Permanent):
    """The upstream answered for good that the item cannot be had (the shop's own 4xx)."""

    status = "unavailable"
