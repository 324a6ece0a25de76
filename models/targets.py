"""The platform/kind pairs of the contract, shared by every part of trawl."""

from __future__ import annotations

from typing import Literal

Platform = Literal["tiktok", "tokopedia", "shopee", "lazada"]
Kind = Literal["account", "videos", "product"]

KINDS_BY_PLATFORM: dict[str, tuple[str, ...]] = {
    "tiktok": ("account", "videos"),
    "tokopedia": ("product",),
    "shopee": ("product",),
    "lazada": ("product",),
}
PAIRS: frozenset[tuple[str, str]] = frozenset(
    (platform, kind) for platform, kinds in KINDS_BY_PLATFORM.items() for kind in kinds
)


def check_pair(platform: str, kind: str) -> tuple[Platform, Kind]:
    """Return the pair typed, or raise ValueError naming the pairs the contract has."""
    if (platform, kind) not in PAIRS:
        known = ", ".join(sorted(f"{p}/{k}" for p, k in PAIRS))
        raise ValueError(f"unknown platform/kind '{platform}/{kind}'; trawl knows {known}")
    return platform, kind  # type: ignore[return-value]
