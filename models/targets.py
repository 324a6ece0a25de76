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


def pair_problem(platform: str, kind: str, source: str = "") -> str | None:
    """None for a pair of the contract; else what users read: the pair (and `source`, where it
    came from) and the pairs trawl knows."""
    if (platform, kind) in PAIRS:
        return None
    known = ", ".join(sorted(f"{p}/{k}" for p, k in PAIRS))
    where = f" (from {source})" if source else ""
    return f"'{platform}/{kind}'{where} is not a platform/kind trawl knows: {known}"
