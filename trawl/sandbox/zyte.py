"""Zyte API's /v1/extract with product extraction, answered from the URL alone."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from models.normalise import PRODUCT_HOSTS, marketplace_ids, product_platform
from trawl.sandbox.common import JSON, PROBLEM_JSON, Reply, between, hash_int, hex_digits, pick, unit

# A shop's currency by its domain's country (ISO code, and as shown on the page); tokopedia.com
# is Indonesian.
_CURRENCY = {
    "id": ("IDR", "Rp"),
    "my": ("MYR", "RM"),
    "sg": ("SGD", "$"),
    "ph": ("PHP", "₱"),
    "th": ("THB", "฿"),
    "vn": ("VND", "₫"),
    "tw": ("TWD", "NT$"),
}
# The shops are the domains trawl's allow-list names, so the sandbox answers for exactly those.
_SHOPS: dict[str, tuple[str, str]] = {
    domain: _CURRENCY["id" if domain == "tokopedia.com" else domain.rsplit(".", 1)[1]]
    for domains in PRODUCT_HOSTS.values()
    for domain in domains
}


_PRICE_RANGE: dict[str, tuple[int, int, Decimal]] = {  # low, high, step of a listed price
    "IDR": (5_000, 5_000_000, Decimal(500)),
    "VND": (10_000, 10_000_000, Decimal(1_000)),
    "MYR": (5, 800, Decimal("0.1")),
    "SGD": (2, 400, Decimal("0.1")),
    "PHP": (50, 20_000, Decimal(1)),
    "THB": (20, 10_000, Decimal(1)),
    "TWD": (50, 20_000, Decimal(1)),
}


_IMAGE_BASE = {
    "tokopedia": "https://images.tokopedia.net/img/cache/700/product-1/",
    "shopee": "https://down-id.img.susercontent.com/file/",
    "lazada": "https://img.lazcdn.com/g/p/",
}


# Shopee "-i.<shop>.<item>", Lazada "-i<item>-s<sku>.html": a single path segment that is a product


_BRANDS = ("Wardah", "Xiaomi", "Uniqlo", "Eiger", "Samsung", "Somethinc", "Miniso", "Philips")


_CATEGORIES = ("Fashion Pria", "Kecantikan", "Elektronik", "Rumah Tangga", "Olahraga", "Makanan")


_NOUNS = ("Kaos Polos", "Serum Wajah", "Earbuds Bluetooth", "Tas Ransel", "Rice Cooker", "Sepatu Lari")


_BLURBS = ("Original, ready stock, ships the same day.", "Garansi resmi 1 tahun.", "Best seller this month.")


def shop_currency(host: str) -> tuple[str, str] | None:
    """(currency, currencyRaw) when `host` is one of the shops, else None."""
    host = host.lower().rstrip(".")
    for domain, currency in _SHOPS.items():
        if host == domain or host.endswith("." + domain):
            return currency
    return None


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> Reply:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    return Reply(status, body, content_type=PROBLEM_JSON)


def _bad_request(detail: str) -> Reply:
    return problem(400, "/request/invalid", "Invalid Request", detail)


def zyte_key_ok(authorization: str | None, key: str) -> bool:
    """Whether a Basic `Authorization` header carries `key` as its user name."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), key.encode())


def zyte_extract(query: object) -> Reply:
    """`POST /v1/extract` after the key check; `query` is the parsed body (None if it was not JSON)."""
    if not isinstance(query, dict) or not isinstance(query.get("url"), str):
        return _bad_request("The request body must be a JSON object with a 'url' string.")
    if query.get("product") is not True:
        return _bad_request('This sandbox serves product extraction only: send "product": true.')
    try:
        parts = urlsplit(query["url"])
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _bad_request("'url' must be an absolute http(s) URL.")
    currency = shop_currency(parts.hostname)
    if currency is None:
        detail = f"Extraction for the domain {parts.hostname} is forbidden."
        return problem(
            451, "/download/domain-forbidden", "Domain Forbidden", detail, blockedDomain=parts.hostname
        )
    return Reply(200, zyte_result(query["url"], currency))


def _metadata(probability: float) -> JSON:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"probability": probability, "dateDownloaded": now}


def _is_product_path(platform: str, segments: list[str]) -> bool:
    return len(segments) >= 2 or (len(segments) == 1 and _item_ids(platform, segments[0]) is not None)


def _item_ids(platform: str, segment: str) -> re.Match[str] | None:
    return marketplace_ids(platform, "/" + segment)


def zyte_result(url: str, currency: tuple[str, str]) -> JSON:
    """The 200 body for a shop URL: a product, a target-side 404, or a non-product page."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if "notfound" in path.lower() or "missing" in path.lower():
        return {"url": url, "statusCode": 404, "product": {"url": url, "metadata": _metadata(0.02)}}
    if not _is_product_path(product_platform(parts.hostname or "") or "", [s for s in path.split("/") if s]):
        return {"url": url, "statusCode": 200, "product": {"url": url, "metadata": _metadata(0.05)}}
    return {"url": url, "statusCode": 200, "product": zyte_product(url, currency)}


def _product_name(platform: str, segment: str, canonical: str) -> str:
    ids = _item_ids(platform, segment)
    words = re.split(r"[-_+\s]+", (segment[: ids.start() - 1] if ids else segment).removesuffix(".html"))
    name = " ".join(w[:1].upper() + w[1:] for w in words if w)
    if re.search(r"[A-Za-z]", name):
        return name
    return f"{pick(_BRANDS, 'brand', canonical)} {pick(_NOUNS, 'noun', canonical)}"


def _prices(currency: str, canonical: str) -> tuple[str, str | None]:
    low, high, step = _PRICE_RANGE[currency]
    listed = Decimal(low * (high / low) ** unit("price", canonical))
    regular = max(step, (listed / step).quantize(Decimal(1), ROUND_HALF_UP) * step)
    discount = pick((0, 0, 0, 10, 20, 35), "discount", canonical)
    price = max(step, (regular * (100 - discount) / 100 / step).quantize(Decimal(1), ROUND_HALF_UP) * step)
    return f"{price:.2f}", (f"{regular:.2f}" if price < regular else None)


def _images(platform: str, canonical: str) -> list[JSON]:
    count = between(1, 5, "images", canonical)
    return [{"url": f"{_IMAGE_BASE[platform]}{hex_digits('image', canonical, i)}.jpg"} for i in range(count)]


def _product_id(platform: str, segment: str, canonical: str) -> str:
    ids = _item_ids(platform, segment)
    if ids:
        return ids.group(ids.lastindex or 0)
    return str(between(10**9, 10**10 - 1, "product-id", canonical))


def zyte_product(url: str, currency: tuple[str, str]) -> JSON:
    """A full product for a product-looking shop URL, derived from its canonical form."""
    parts = urlsplit(url)
    canonical = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    root = f"{parts.scheme}://{parts.netloc}"
    segment = unquote([s for s in parts.path.split("/") if s][-1])
    platform = product_platform(parts.hostname or "") or ""
    images = _images(platform, canonical)
    name = _product_name(platform, segment, canonical)
    price, regular_price = _prices(currency[0], canonical)
    category = pick(_CATEGORIES, "category", canonical)
    product: JSON = {
        "url": url,
        "canonicalUrl": canonical,
        "name": name,
        "price": price,
        "currency": currency[0],
        "currencyRaw": currency[1],
        "availability": "OutOfStock" if unit("stock", canonical) < 0.1 else "InStock",
        "sku": f"SKU-{hash_int('sku', canonical) % 10**8:08d}",
        "productId": _product_id(platform, segment, canonical),
        "brand": {"name": pick(_BRANDS, "brand", canonical)},
        "aggregateRating": {
            "ratingValue": round(3.5 + 1.5 * unit("rating", canonical), 1),
            "bestRating": 5.0,
            "reviewCount": between(0, 5_000, "reviews", canonical),
        },
        "mainImage": images[0],
        "images": images,
        "description": f"{name}. {pick(_BLURBS, 'blurb', canonical)}",
        "breadcrumbs": [
            {"name": "Home", "url": f"{root}/"},
            {"name": category, "url": f"{root}/p/{category.lower().replace(' ', '-')}"},
        ],
        "metadata": _metadata(round(0.97 + 0.02 * unit("probability", canonical), 2)),
    }
    if regular_price is not None:
        product["regularPrice"] = regular_price
    return product
