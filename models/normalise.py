"""Turns what analysts type into targets trawl can fetch: TikTok usernames and marketplace
product URLs. Pure functions, shared by the producer (validation, dedupe) and the workers
(the allow-list is checked again right before any upstream call)."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from models.records import MAX_TARGET

MAX_USERNAME = 24
MAX_URL = MAX_TARGET  # what a WorkItem's target may hold; real product links are far shorter
_URL_JUNK = re.compile(r"[\s\x00-\x1f\x7f]")  # inside a link: pasted text, not a URL
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?!\d)", re.IGNORECASE)
_USERNAME = re.compile(r"^[a-z0-9_.]{2,24}$")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
TIKTOK_HOSTS = ("tiktok.com",)

# Product hosts per platform: a URL is fetched only when its host is one of these or a
# subdomain of one. Nothing else is ever sent to Zyte.
PRODUCT_HOSTS: dict[str, tuple[str, ...]] = {
    "tokopedia": ("tokopedia.com",),
    "shopee": (
        "shopee.co.id",
        "shopee.com.my",
        "shopee.sg",
        "shopee.ph",
        "shopee.co.th",
        "shopee.vn",
        "shopee.tw",
    ),
    "lazada": ("lazada.co.id", "lazada.com.my", "lazada.sg", "lazada.com.ph", "lazada.co.th", "lazada.vn"),
}
_SHOPEE_ID = (re.compile(r"-i\.(\d+)\.(\d+)(?:$|[/?])"), re.compile(r"^/product/(\d+)/(\d+)"))
_LAZADA_ID = re.compile(r"-i(\d+)(?:-s\d+)?\.html$")


class InvalidTarget(ValueError):
    """The row's value can never be fetched; the message is the reject reason users read."""


@dataclass(frozen=True)
class Target:
    value: str  # what the worker fetches: a username or a canonical https URL
    item_key: str  # stable id for dedupe and the output object's name


def _clean(raw: str) -> str:
    value = raw.translate(_INVISIBLE).strip()
    if not value:
        raise InvalidTarget("blank value")
    return value


def _host_allowed(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def _split_url(value: str, what: str, domains: tuple[str, ...]) -> tuple[str, str, str]:
    """(host, path, query) of an http(s) URL on one of `domains`, else InvalidTarget."""
    if len(value) > MAX_URL:
        raise InvalidTarget(f"URL is {len(value):,} characters long; at most {MAX_URL:,} are allowed")
    if _URL_JUNK.search(value):
        raise InvalidTarget("URL contains spaces or control characters")
    parts = urlsplit(value if _SCHEME.match(value) else "https://" + value)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidTarget(f"URL scheme '{scheme}' is not allowed (only http and https)")
    try:
        host = (parts.hostname or "").rstrip(".").lower()
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"malformed URL: {exc}") from exc
    if not host:
        raise InvalidTarget("URL has no host")
    if _is_internal(host):
        raise InvalidTarget(f"host '{host}' is an internal address")
    if parts.username or parts.password or port not in (None, 80, 443):
        raise InvalidTarget(f"URL on '{host}' carries credentials or a port; {what} links never do")
    if not _host_allowed(host, domains):
        raise InvalidTarget(f"host '{host}' is not a {what} domain (allowed: {', '.join(domains)})")
    return host, parts.path, parts.query


def _is_internal(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not address.is_global


def normalise_username(raw: str) -> Target:
    """'@Some.User ', 'https://www.tiktok.com/@some.user?lang=en' -> 'some.user'."""
    value = _clean(raw)
    if _SCHEME.match(value) or "tiktok.com" in value.lower() or value.lower().startswith("www."):
        _, path, _ = _split_url(value, "TikTok", TIKTOK_HOSTS)
        first = path.strip("/").split("/", 1)[0]
        if not first.startswith("@"):
            raise InvalidTarget("TikTok URL is not a profile link (expected tiktok.com/@username)")
        value = first
    value = value.lstrip("@").lower()
    if len(value) > MAX_USERNAME:
        raise InvalidTarget(f"username is {len(value)} characters long; TikTok allows at most {MAX_USERNAME}")
    if not _USERNAME.match(value) or value.endswith("."):
        rule = f"use 2-{MAX_USERNAME} letters, digits, '_' or '.' (not ending in '.')"
        raise InvalidTarget(f"invalid username '{value}': {rule}")
    return Target(value=value, item_key=value)


def normalise_product_url(platform: str, raw: str) -> Target:
    """Canonical https URL on the platform's own domains, with every query parameter and the
    fragment dropped: on all three marketplaces a product's identity lives in the path, and
    the query carries only tracking or UI state (utm_*, spm, extParam, sp_atk, xptdk, ...)."""
    domains = PRODUCT_HOSTS.get(platform)
    if domains is None:
        raise InvalidTarget(f"'{platform}' is not a product platform")
    host, path, _ = _split_url(_clean(raw), platform.capitalize(), domains)
    host = _canonical_host(platform, host)
    path = re.sub(r"/{2,}", "/", path).rstrip("/")
    if not path:
        raise InvalidTarget(f"URL on '{host}' has no product path")
    canonical = urlunsplit(("https", host, path, "", ""))
    return Target(value=canonical, item_key=_product_key(platform, host, path, canonical))


def _canonical_host(platform: str, host: str) -> str:
    """One spelling per marketplace site: the bare, www. and m. (mobile) hosts show the same
    product, so 'm.tokopedia.com' and 'tokopedia.com' both become 'www.tokopedia.com'.
    Shopee serves from the bare domain; Tokopedia and Lazada from www."""
    bare = host.removeprefix("www.").removeprefix("m.")
    if bare not in PRODUCT_HOSTS[platform]:
        return host  # another subdomain: a different site, kept as it is
    return bare if platform == "shopee" else "www." + bare


def product_platform(host: str) -> str | None:
    """The marketplace whose allow-listed domains `host` is on, or None."""
    return next((p for p, domains in PRODUCT_HOSTS.items() if _host_allowed(host, domains)), None)


def marketplace_ids(platform: str, path: str) -> re.Match[str] | None:
    """Where a product path carries the marketplace's ids: Shopee's shop and item id, Lazada's
    item id (the last group is always the item's). Tokopedia's paths carry none."""
    for pattern in {"shopee": _SHOPEE_ID, "lazada": (_LAZADA_ID,)}.get(platform, ()):
        found = pattern.search(path)
        if found:
            return found
    return None


def _product_key(platform: str, host: str, path: str, canonical: str) -> str:
    region = host.rsplit(".", 1)[-1]
    found = marketplace_ids(platform, path)
    if found:
        return "-".join((region, *found.groups()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def normalise(platform: str, kind: str, raw: str) -> Target:
    if platform == "tiktok":
        return normalise_username(raw)
    return normalise_product_url(platform, raw)
