"""What the sandbox's upstreams share: the answer shape, and values derived from sha256 of the
input (never from Python's hash(), which changes per process)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, TypeVar

JSON = dict[str, Any]


Api = Literal["tikapi", "zyte"]


T = TypeVar("T")


PROBLEM_JSON = "application/problem+json"


def hash_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def unit(*parts: object) -> float:
    return hash_int(*parts) / 2**64


def between(low: int, high: int, *parts: object) -> int:
    return low + hash_int(*parts) % (high - low + 1)


def pick(options: Sequence[T], *parts: object) -> T:
    return options[hash_int(*parts) % len(options)]


def hex_digits(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, built by pure functions so the protocol can be unit-tested without sockets."""

    status: int
    body: JSON
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"  # 520 is Zyte's (and Cloudflare's), not in the HTTP registry
