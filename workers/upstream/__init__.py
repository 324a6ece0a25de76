"""Adapters for the upstream APIs. Vendor errors become the few domain exceptions below,
chained with `from`; workers/outcome.py alone decides what each means for the queue."""

from __future__ import annotations


class UpstreamError(Exception):
    """Base of every failure an upstream call can end in."""


class Retryable(UpstreamError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(Retryable):
    """429/503: the upstream asks us to slow down."""


class Unavailable(Retryable):
    """5xx, 520, timeouts, connection errors, garbage bodies: try again later."""


class BadCredentials(Retryable):
    """401/403 from the upstream or a key that cannot be read. Retryable: a rotated key fixes it."""


class DeadlineReached(Retryable):
    """Too little of the invocation is left to start the call."""


class Permanent(UpstreamError):
    """The item can never be fetched: written as a record with `status`, never retried."""

    status = "unavailable"


class NotFound(Permanent):
    status = "not_found"


class Private(Permanent):
    status = "private"


class DomainRefused(Permanent):
    status = "domain_refused"


class InvalidTarget(Permanent):
    status = "invalid_target"


class NotAProduct(Permanent):
    status = "not_a_product"


class Gone(Permanent):
    """The upstream answered for good that the item cannot be had (e.g. Zyte 521)."""

    status = "unavailable"
