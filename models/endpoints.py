"""The one rule for upstream URLs, shared by the workers (at cold start) and the CLI (before a
local stack starts): TLS always, except plain http to this machine in a local run, where the
sandbox or a stand-in listens on loopback."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_upstream_url(url: str, allow_loopback_http: bool) -> str:
    """The URL without a trailing slash, or ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"upstream URL has no host: {url!r}")
    if parts.scheme == "https":
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback(parts.hostname):
        if allow_loopback_http:
            return url.rstrip("/")
        raise ValueError(f"upstream URL must be https; plain http to loopback is for local runs only: {url}")
    raise ValueError(f"upstream URL must be https (plain http only to 127.0.0.1 in a local run): {url}")
