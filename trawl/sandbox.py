"""Local stand-in for TikAPI and Zyte API: the workers' upstreams when trawl runs on one machine.

It speaks both wire protocols (paths, auth headers, JSON shapes, error codes, as the public SDKs use them),
answers deterministically, and injects faults and latency so failure handling can be watched.

Deterministic rules (every value comes from sha256 of the input, never from Python's ``hash()``):

TikAPI: ``GET /public/check?username=|user_id=``, ``GET /public/posts?secUid=&count=&cursor=``,
header ``X-API-KEY`` (wrong key -> 403 "Invalid API key").
- Usernames are case-insensitive (looked up lower-cased). The same username always yields the same
  id, secUid, profile, stats and videos, on any server instance.
- ``ghost*`` or ``missing*`` -> 404 "User not found"; so is a name that is not ``[a-z0-9_.]{1,64}``.
- ``private*`` -> profile with ``privateAccount: true``; its posts -> 403 "This account is private".
- ``videos_<N>`` (N up to 6 digits) has exactly N videos; any other user has 0..80 (hash-derived).
- secUid is ``"MS4wLjABAAAA" + urlsafe_b64(username)`` without padding, so posts are answered for any
  secUid without server state; one that does not decode to a username -> 404.
- Posts come newest first. ``cursor`` is the createTime in ms of the last item returned (a digit
  string; absent or "0" means the newest); the next page holds the videos strictly older than it.
  A video id is ``createTime << 32 | hash32``, 19 digits, as TikTok's ids are.
- ``user_id`` lookups work for ids this server instance has returned from a check; others -> 404.

Zyte: ``POST /v1/extract`` with ``{"url": ..., "product": true}``, Basic auth (user = key).
- Shops: hosts ending in tokopedia.com, shopee.{co.id,com.my,sg,ph,co.th,vn,tw} and
  lazada.{co.id,com.my,sg,com.ph,co.th,vn}; any other host -> 451 /download/domain-forbidden.
- Path containing "notfound" or "missing" -> 200 with statusCode 404 and probability 0.02.
- Path "/" or one segment without an item id (a shop page) -> 200 with probability 0.05.
- Otherwise a full product derived from the canonical URL (tracking parameters do not change it);
  currency by domain: IDR, MYR, SGD, PHP, THB, VND, TWD. Only ``dateDownloaded`` is the current time.

Faults (TikAPI and Zyte paths only): sleep ``latency_ms``, then draw the fault from
``sha256(f"{seed}:{method}:{path}:{target}:{attempt}")``, walking ``FAULT_KINDS`` with cumulative
rates. ``target`` is the username/user_id, ``secUid:cursor`` or the URL; ``attempt`` counts earlier
calls with the same method, path and target, so each target sees the same sequence whatever the
interleaving. Control from another process: ``GET``/``POST /_sandbox/faults``, ``GET /_sandbox/stats``.
The ``slow`` kind is a latency spike, not an error: that call waits ``slow_ms`` more (default
1500), then is answered normally.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

JSON = dict[str, Any]
Api = Literal["tikapi", "zyte"]
T = TypeVar("T")

FAULT_KINDS: tuple[str, ...] = (
    "401", "403", "429", "500", "502", "503", "520", "timeout", "reset", "slow",
)  # fmt: skip
DEFAULT_SLOW_MS = 1500  # how long a "slow" call (a latency spike) waits on top of latency_ms
SEC_UID_PREFIX = "MS4wLjABAAAA"
PROBLEM_JSON = "application/problem+json"
CALL_LOG_SIZE = 1_000_000  # requests call_log() keeps: a long `trawl up` must not grow without end


# --------------------------------------------------------------------------- faults


def _check_rate(kind: str, rate: float, part: str) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault {part!r}: unknown kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault {part!r}: rate must be between 0 and 1")


@dataclass(frozen=True)
class Call:
    """One request served on an upstream path: when it came (epoch seconds) and for what."""

    at: float
    method: str
    path: str
    target: str


@dataclass(frozen=True)
class Faults:
    """Injected error rate per fault kind (0..1, adding up to at most 1) and a fixed latency;
    a "slow" call waits `slow_ms` on top of that latency."""

    rates: dict[str, float]
    latency_ms: int = 0
    seed: int = 0
    slow_ms: int = DEFAULT_SLOW_MS

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            _check_rate(kind, rate, f"{kind}={rate}")
        total = sum(self.rates.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; at most 1 is possible")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if self.slow_ms < 0:
            raise ValueError(f"slow_ms must be >= 0, got {self.slow_ms}")
        # a private copy: the caller's dict must not change a running server's faults behind its lock
        object.__setattr__(self, "rates", {k: float(v) for k, v in self.rates.items()})

    def __hash__(self) -> int:  # the dict field would make the generated hash raise
        return hash((self.spec(), self.latency_ms, self.seed, self.slow_ms))

    @classmethod
    def parse(cls, spec: str, latency_ms: int = 0, seed: int = 0, slow_ms: int = DEFAULT_SLOW_MS) -> Faults:
        """Read "429=0.1,500=0.05,timeout=0.02"; "" means no faults."""
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, value = (s.strip() for s in part.partition("="))
            if not sep:
                raise ValueError(f"fault {part!r}: expected KIND=RATE, e.g. 429=0.1")
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"fault {part!r}: rate {value!r} is not a number") from None
            if kind in rates:
                raise ValueError(f"fault {part!r}: {kind} is given twice")
            _check_rate(kind, rate, part)
            rates[kind] = rate
        return cls(rates, latency_ms=latency_ms, seed=seed, slow_ms=slow_ms)

    def spec(self) -> str:
        """The canonical spec string, which `parse` reads back."""
        return ",".join(f"{kind}={self.rates[kind]:g}" for kind in FAULT_KINDS if self.rates.get(kind))

    def decide(self, method: str, path: str, target: str, attempt: int) -> str | None:
        """The fault kind for this call, or None; a pure function of the arguments and the seed."""
        digest = hashlib.sha256(f"{self.seed}:{method}:{path}:{target}:{attempt}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        cumulative = 0.0
        for kind in FAULT_KINDS:
            cumulative += self.rates.get(kind, 0.0)
            if draw < cumulative:
                return kind
        return None


# --------------------------------------------------------------------------- deterministic helpers


def _hash_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "big")


def _unit(*parts: object) -> float:
    return _hash_int(*parts) / 2**64


def _between(low: int, high: int, *parts: object) -> int:
    return low + _hash_int(*parts) % (high - low + 1)


def _pick(options: Sequence[T], *parts: object) -> T:
    return options[_hash_int(*parts) % len(options)]


def _hex(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, built by pure functions so the protocol can be unit-tested without sockets."""

    status: int
    body: JSON
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- TikAPI

_USERNAME = re.compile(r"[a-z0-9_.]{1,64}")
_VIDEOS_N = re.compile(r"videos_(\d{1,6})")
_NEWEST_VIDEO = 1_735_689_600  # 2025-01-01Z, fixed so output never depends on today's date
_HISTORY_S = 5 * 365 * 86_400  # a big account's videos are squeezed into 5 years: ids stay 19 digits
_BIOS = ("daily vlogs", "food & travel", "link in bio", "jualan online setiap hari", "dance | music", "")
_CAPTIONS = ("new drop today", "try this at home", "unboxing", "day in my life", "review jujur", "POV:")
_TAGS = ("fyp", "foryou", "racunshopee", "tiktokshop", "viral", "ootd", "kuliner")


def encode_sec_uid(username: str) -> str:
    return SEC_UID_PREFIX + base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")


def decode_sec_uid(sec_uid: str) -> str | None:
    """The username a sandbox secUid stands for, or None if it is not one."""
    encoded = sec_uid.removeprefix(SEC_UID_PREFIX)
    try:
        username = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    # urlsafe_b64decode skips stray characters, so only an exact round trip counts
    return username if encode_sec_uid(username) == sec_uid and _USERNAME.fullmatch(username) else None


def user_exists(username: str) -> bool:
    return bool(_USERNAME.fullmatch(username)) and not username.startswith(("ghost", "missing"))


def video_count(username: str) -> int:
    match = _VIDEOS_N.fullmatch(username)
    return int(match.group(1)) if match else _between(0, 80, "videos", username)


def _author(username: str) -> JSON:
    return {
        "uniqueId": username,
        "secUid": encode_sec_uid(username),
        "nickname": re.sub(r"[_.]+", " ", username).strip().title() or username,
        "signature": _pick(_BIOS, "bio", username),
    }


def tiktok_profile(username: str) -> JSON:
    """`userInfo` for an existing (lower-case) username."""
    followers = int(10 ** (1 + 6 * _unit("followers", username)))
    following = _between(0, 2_000, "following", username)
    videos = video_count(username)
    user = _author(username) | {
        "id": str(6 * 10**18 + _hash_int("user-id", username) % 10**18),
        "verified": _unit("verified", username) < 0.1,
        "privateAccount": username.startswith("private"),
        "avatarMedium": f"https://p16-sign.tiktokcdn.com/tos-maliva-avt-0068/{_hex('avatar', username)}"
        "~c5_720x720.jpeg",
    }
    stats = {
        "followerCount": followers,
        "followingCount": following,
        "heartCount": followers * _between(1, 30, "hearts", username) + videos,
        "diggCount": _between(0, 50_000, "diggs", username),
        "videoCount": videos,
        "friendCount": _between(0, following, "friends", username),
    }
    return {"user": user, "stats": stats}


def _cadence_s(username: str, total: int) -> int:
    return max(2, min(_between(3_600, 259_200, "cadence", username), _HISTORY_S // max(total, 1)))


def _create_time(username: str, index: int, cadence: int) -> int:
    # jitter below half the cadence keeps createTime strictly decreasing with the index
    newest = _NEWEST_VIDEO - _between(0, 30 * 86_400, "newest", username)
    return newest - index * cadence - _hash_int("jitter", username, index) % (cadence // 2)


def _first_older(username: str, total: int, cadence: int, cursor_ms: int) -> int:
    low, high = 0, total
    while low < high:
        mid = (low + high) // 2
        if _create_time(username, mid, cadence) * 1000 < cursor_ms:
            high = mid
        else:
            low = mid + 1
    return low


def _video(username: str, index: int, cadence: int, author: JSON) -> JSON:
    created = _create_time(username, index, cadence)
    video_id = str(created << 32 | _hash_int("video-id", username, index) & 0xFFFFFFFF)
    plays = int(10 ** (2 + 5 * _unit("plays", username, index)))
    stats = {
        "playCount": plays,
        "diggCount": plays * _between(1, 20, "diggs", username, index) // 100,
        "commentCount": plays // _between(50, 500, "comments", username, index),
        "shareCount": plays // _between(100, 2_000, "shares", username, index),
        "collectCount": plays // _between(100, 1_000, "collects", username, index),
    }
    cdn = f"https://v16-webapp-prime.tiktok.com/video/tos/alisg/{_hex('video', video_id)}"
    caption = f"{_pick(_CAPTIONS, 'caption', username, index)} #{_pick(_TAGS, 'tag', username, index)}"
    return {
        "id": video_id,
        "desc": caption,
        "createTime": created,
        "author": author,
        "stats": stats,
        "video": {
            "duration": _between(5, 180, "duration", username, index),
            "playAddr": f"{cdn}/?mime_type=video_mp4",
            "downloadAddr": f"{cdn}/?mime_type=video_mp4&download=1",
            "videoQuality": "normal",
        },
    }


def tiktok_posts_page(username: str, count: int, cursor: str | None) -> JSON:
    """One page of an existing account's videos, newest first, after `cursor` (createTime in ms)."""
    total = video_count(username)
    cadence = _cadence_s(username, total)
    start = _first_older(username, total, cadence, int(cursor)) if cursor and int(cursor) else 0
    stop = min(start + count, total)
    author = _author(username)
    items = [_video(username, i, cadence, author) for i in range(start, stop)]
    next_cursor = str(items[-1]["createTime"] * 1000) if items else (cursor or "0")
    return {"status": "success", "itemList": items, "cursor": next_cursor, "hasMore": stop < total}


def _tik_error(status: int, message: str, **headers: str) -> Reply:
    return Reply(status, {"status": "error", "message": message}, headers=dict(headers))


def tikapi_check(params: Mapping[str, str], usernames_by_id: Mapping[str, str]) -> Reply:
    """`GET /public/check` after the key check."""
    username = params.get("username", "").strip().lower()
    user_id = params.get("user_id", "").strip()
    if not username and not user_id:
        return _tik_error(400, "username or user_id is required")
    username = username or usernames_by_id.get(user_id, "")
    if not user_exists(username):
        return _tik_error(404, "User not found")
    return Reply(200, {"status": "success", "message": "", "userInfo": tiktok_profile(username)})


def tikapi_posts(params: Mapping[str, str]) -> Reply:
    """`GET /public/posts` after the key check."""
    sec_uid = params.get("secUid", "")
    count = params.get("count", "30")
    cursor = params.get("cursor") or None
    if not sec_uid:
        return _tik_error(400, "secUid is required")
    if not (count.isascii() and count.isdigit() and 1 <= int(count) <= 30):
        return _tik_error(400, "count must be between 1 and 30")
    if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
        return _tik_error(400, "cursor must be a string of digits")
    username = decode_sec_uid(sec_uid)
    if username is None or not user_exists(username):
        return _tik_error(404, "User not found")
    if username.startswith("private"):
        return _tik_error(403, "This account is private")
    return Reply(200, tiktok_posts_page(username, int(count), cursor))


# --------------------------------------------------------------------------- Zyte

_SHOPS: dict[str, tuple[str, str]] = {  # domain -> (ISO currency, as shown on the page)
    "tokopedia.com": ("IDR", "Rp"),
    "shopee.co.id": ("IDR", "Rp"),
    "shopee.com.my": ("MYR", "RM"),
    "shopee.sg": ("SGD", "$"),
    "shopee.ph": ("PHP", "₱"),
    "shopee.co.th": ("THB", "฿"),
    "shopee.vn": ("VND", "₫"),
    "shopee.tw": ("TWD", "NT$"),
    "lazada.co.id": ("IDR", "Rp"),
    "lazada.com.my": ("MYR", "RM"),
    "lazada.sg": ("SGD", "$"),
    "lazada.com.ph": ("PHP", "₱"),
    "lazada.co.th": ("THB", "฿"),
    "lazada.vn": ("VND", "₫"),
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
_ITEM_ID = re.compile(r"-i\.\d+\.(\d+)$|-i(\d+)(?:-s\d+)?(?:\.html)?$")
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


def _problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> Reply:
    body = {"type": type_, "title": title, "status": status, "detail": detail, **extra}
    return Reply(status, body, content_type=PROBLEM_JSON)


def _bad_request(detail: str) -> Reply:
    return _problem(400, "/request/invalid", "Invalid Request", detail)


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
        return _problem(
            451, "/download/domain-forbidden", "Domain Forbidden", detail, blockedDomain=parts.hostname
        )
    return Reply(200, zyte_result(query["url"], currency))


def _metadata(probability: float) -> JSON:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"probability": probability, "dateDownloaded": now}


def _is_product_path(segments: list[str]) -> bool:
    return len(segments) >= 2 or (len(segments) == 1 and _ITEM_ID.search(segments[0]) is not None)


def zyte_result(url: str, currency: tuple[str, str]) -> JSON:
    """The 200 body for a shop URL: a product, a target-side 404, or a non-product page."""
    path = unquote(urlsplit(url).path)
    if "notfound" in path.lower() or "missing" in path.lower():
        return {"url": url, "statusCode": 404, "product": {"url": url, "metadata": _metadata(0.02)}}
    if not _is_product_path([s for s in path.split("/") if s]):
        return {"url": url, "statusCode": 200, "product": {"url": url, "metadata": _metadata(0.05)}}
    return {"url": url, "statusCode": 200, "product": zyte_product(url, currency)}


def _product_name(segment: str, canonical: str) -> str:
    words = re.split(r"[-_+\s]+", _ITEM_ID.sub("", segment).removesuffix(".html"))
    name = " ".join(w[:1].upper() + w[1:] for w in words if w)
    if re.search(r"[A-Za-z]", name):
        return name
    return f"{_pick(_BRANDS, 'brand', canonical)} {_pick(_NOUNS, 'noun', canonical)}"


def _prices(currency: str, canonical: str) -> tuple[str, str | None]:
    low, high, step = _PRICE_RANGE[currency]
    listed = Decimal(low * (high / low) ** _unit("price", canonical))
    regular = max(step, (listed / step).quantize(Decimal(1), ROUND_HALF_UP) * step)
    discount = _pick((0, 0, 0, 10, 20, 35), "discount", canonical)
    price = max(step, (regular * (100 - discount) / 100 / step).quantize(Decimal(1), ROUND_HALF_UP) * step)
    return f"{price:.2f}", (f"{regular:.2f}" if price < regular else None)


def _images(host: str, canonical: str) -> list[JSON]:
    platform = next(domain.split(".")[0] for domain in _SHOPS if host.endswith(domain))
    count = _between(1, 5, "images", canonical)
    return [{"url": f"{_IMAGE_BASE[platform]}{_hex('image', canonical, i)}.jpg"} for i in range(count)]


def _product_id(segment: str, canonical: str) -> str:
    match = _ITEM_ID.search(segment)
    if match:
        return match.group(1) or match.group(2)
    return str(_between(10**9, 10**10 - 1, "product-id", canonical))


def zyte_product(url: str, currency: tuple[str, str]) -> JSON:
    """A full product for a product-looking shop URL, derived from its canonical form."""
    parts = urlsplit(url)
    canonical = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    root = f"{parts.scheme}://{parts.netloc}"
    segment = unquote([s for s in parts.path.split("/") if s][-1])
    images = _images(parts.hostname or "", canonical)
    name = _product_name(segment, canonical)
    price, regular_price = _prices(currency[0], canonical)
    category = _pick(_CATEGORIES, "category", canonical)
    product: JSON = {
        "url": url,
        "canonicalUrl": canonical,
        "name": name,
        "price": price,
        "currency": currency[0],
        "currencyRaw": currency[1],
        "availability": "OutOfStock" if _unit("stock", canonical) < 0.1 else "InStock",
        "sku": f"SKU-{_hash_int('sku', canonical) % 10**8:08d}",
        "productId": _product_id(segment, canonical),
        "brand": {"name": _pick(_BRANDS, "brand", canonical)},
        "aggregateRating": {
            "ratingValue": round(3.5 + 1.5 * _unit("rating", canonical), 1),
            "bestRating": 5.0,
            "reviewCount": _between(0, 5_000, "reviews", canonical),
        },
        "mainImage": images[0],
        "images": images,
        "description": f"{name}. {_pick(_BLURBS, 'blurb', canonical)}",
        "breadcrumbs": [
            {"name": "Home", "url": f"{root}/"},
            {"name": category, "url": f"{root}/p/{category.lower().replace(' ', '-')}"},
        ],
        "metadata": _metadata(round(0.97 + 0.02 * _unit("probability", canonical), 2)),
    }
    if regular_price is not None:
        product["regularPrice"] = regular_price
    return product


# --------------------------------------------------------------------------- fault answers

_RETRY_AFTER = {"Retry-After": "1"}
_ZYTE_FAULTS: dict[str, tuple[str, str, str]] = {  # kind -> problem type, title, detail
    "401": ("/auth/key-not-found", "Authentication Key Not Found",
            "The authentication key is not valid or can't be matched."),
    "403": ("/auth/account-suspended", "Account Suspended", "The account is suspended; contact support."),
    "429": ("/limits/over-user-limit", "User Rate Limit Exceeded",
            "The rate of requests exceeds the rate limit of the user. Retry after the Retry-After delay."),
    "520": ("/download/temporary-error", "Temporary Downloading Error",
            "There is a downloading problem which might be temporary. Retry in 1 seconds."),
}  # fmt: skip


def fault_reply(kind: str, api: Api) -> Reply:
    """The answer for an injected fault (every kind but "reset", which sends nothing, and "slow",
    which is answered normally)."""
    status = 504 if kind == "timeout" else int(kind)
    headers = _RETRY_AFTER if status in (429, 503, 520) else {}
    if api == "tikapi":
        message = {401: "Invalid API key", 403: "Invalid API key", 429: "Rate limit exceeded"}.get(status)
        return _tik_error(status, message or _phrase(status), **headers)
    type_, title, detail = _ZYTE_FAULTS.get(kind, ("about:blank", _phrase(status), _phrase(status) + "."))
    return Reply(status, _problem(status, type_, title, detail).body, PROBLEM_JSON, dict(headers))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown Error"  # 520 is Zyte's (and Cloudflare's), not in the HTTP registry


# --------------------------------------------------------------------------- HTTP server


class _FaultsUpdate(BaseModel):
    """Body of `POST /_sandbox/faults`; omitted fields reset to no faults, no latency, same seed."""

    model_config = ConfigDict(extra="forbid")
    faults: str = ""
    latency_ms: int = Field(default=0, ge=0)
    seed: int | None = None
    slow_ms: int = Field(default=DEFAULT_SLOW_MS, ge=0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is closed, so its thread does not wait forever
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per request would drown the CLI's own output

    def setup(self) -> None:
        super().setup()
        self.server.sandbox._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, open_=False)

    def do_GET(self) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/_sandbox/faults":
            self._send(Reply(200, sandbox._faults_body()))
        elif parts.path == "/_sandbox/stats":
            self._send(Reply(200, dict(sandbox.stats)))
        elif parts.path == "/public/check":
            target = params.get("username") or params.get("user_id", "")
            self._upstream("tikapi", target, lambda: self._check(params))
        elif parts.path == "/public/posts":
            target = f"{params.get('secUid', '')}:{params.get('cursor', '')}"
            self._upstream("tikapi", target, lambda: self._posts(params))
        else:
            self._send(_tik_error(404, "Not found"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self._read_body()
        if path == "/_sandbox/faults":
            self._send(self.server.sandbox._control(raw))
        elif path == "/v1/extract":
            query = _json_or_none(raw)
            target = str(query.get("url", "")) if isinstance(query, dict) else ""
            self._upstream("zyte", target, lambda: self._extract(query))
        else:
            self._send(_problem(404, "about:blank", "Not Found", f"No endpoint at {path}."))

    def _check(self, params: Mapping[str, str]) -> Reply:
        if not self._tikapi_key_ok():
            return _tik_error(403, "Invalid API key")
        reply = tikapi_check(params, self.server.sandbox._usernames_by_id)
        if reply.status == 200:
            self.server.sandbox._remember(reply.body["userInfo"]["user"])
        return reply

    def _posts(self, params: Mapping[str, str]) -> Reply:
        if not self._tikapi_key_ok():
            return _tik_error(403, "Invalid API key")
        self.server.sandbox._hold(params)
        return tikapi_posts(params)

    def _extract(self, query: object) -> Reply:
        if not zyte_key_ok(self.headers.get("Authorization"), self.server.sandbox.zyte_key):
            return fault_reply("401", "zyte")
        return zyte_extract(query)

    def _tikapi_key_ok(self) -> bool:
        sent = self.headers.get("X-API-KEY", "").encode("utf-8", "replace")
        return hmac.compare_digest(sent, self.server.sandbox.tikapi_key.encode())

    def _upstream(self, api: Api, target: str, answer: Callable[[], Reply]) -> None:
        sandbox = self.server.sandbox
        faults, kind = sandbox._draw(self.command, urlsplit(self.path).path, target)
        stopping = sandbox._stopping
        if faults.latency_ms and stopping.wait(faults.latency_ms / 1000):
            return self._drop()
        if kind == "slow" and stopping.wait(faults.slow_ms / 1000):
            return self._drop()
        if kind == "reset" or (kind == "timeout" and stopping.wait(sandbox.timeout_hold_s)):
            return self._drop()
        reply = answer() if kind in (None, "slow") else fault_reply(kind, api)
        if api == "zyte":
            reply = replace(reply, headers=reply.headers | {"request-id": str(uuid.uuid4())})
        self._send(reply)

    def _drop(self) -> None:
        # linger 0 makes close() send RST: the client sees a reset connection, not a clean answer
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length, self.close_connection = 0, True
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body, ensure_ascii=False).encode()
        self.send_response(reply.status, _phrase(reply.status))
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _json_or_none(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # skip HTTPServer's reverse-DNS lookup of the host, which can stall without a network
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.socket.getsockname()[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that hung up (e.g. after its own read timeout) is part of the game, not an error
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError) or self.sandbox._stopping.is_set():
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """TikAPI + Zyte API on 127.0.0.1 (a free port), in a background thread."""

    def __init__(
        self,
        *,
        tikapi_key: str = "sandboxkey1234567890",
        zyte_key: str = "sandboxzytekey123",
        faults: Faults | None = None,
        timeout_hold_s: float = 5.0,
    ) -> None:
        self.tikapi_key = tikapi_key
        self.zyte_key = zyte_key
        self.timeout_hold_s = timeout_hold_s
        self._faults = faults or Faults({})
        self._lock = threading.Lock()
        self._stats: Counter[str] = Counter(requests=0)
        self._attempts: Counter[tuple[str, str, str]] = Counter()
        self._log: deque[Call] = deque(maxlen=CALL_LOG_SIZE)
        self._usernames_by_id: dict[str, str] = {}
        self._held_from: int | None = None
        self._released = threading.Event()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="trawl-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by latency or a timeout fault are dropped at once."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would otherwise still be served
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=1)

    def __enter__(self) -> SandboxServer:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("sandbox is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    @property
    def tikapi_url(self) -> str:
        return self.url

    @property
    def zyte_url(self) -> str:
        return f"{self.url}/v1/extract"

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    @property
    def stats(self) -> dict[str, int]:
        """Requests served on the upstream paths, and how many got each injected fault kind."""
        with self._lock:
            return dict(self._stats)

    def calls(self) -> Counter[tuple[str, str, str]]:
        """Requests served per (method, path, target): how often each item was fetched."""
        with self._lock:
            return Counter(self._attempts)

    def call_log(self) -> list[Call]:
        """The latest requests served (up to CALL_LOG_SIZE), oldest first, each with when it came."""
        with self._lock:
            return list(self._log)

    def hold_posts(self, from_page: int) -> None:
        """Hold back every /public/posts page from page `from_page` (0 is the newest) until
        release_posts(): a job with long accounts then stays running for as long as a test wants."""
        with self._lock:
            self._held_from, self._released = from_page, threading.Event()

    def release_posts(self) -> None:
        with self._lock:
            self._held_from = None
            self._released.set()

    def _hold(self, params: Mapping[str, str]) -> None:
        with self._lock:
            held_from, released = self._held_from, self._released
        if held_from is None:
            return
        username = decode_sec_uid(params.get("secUid", ""))
        cursor = params.get("cursor") or ""
        if username is None or not cursor.isdigit() or not int(cursor):
            page = 0
        else:
            total = video_count(username)
            start = _first_older(username, total, _cadence_s(username, total), int(cursor))
            page = start // max(1, int(params.get("count", "30") or 30))
        while page >= held_from and not released.wait(0.2) and not self._stopping.is_set():
            pass

    def _draw(self, method: str, path: str, target: str) -> tuple[Faults, str | None]:
        with self._lock:
            attempt = self._attempts[method, path, target]
            self._attempts[method, path, target] += 1
            self._log.append(Call(time.time(), method, path, target))
            kind = self._faults.decide(method, path, target, attempt)
            self._stats["requests"] += 1
            if kind is not None:
                self._stats[kind] += 1
            return self._faults, kind

    def _remember(self, user: JSON) -> None:
        with self._lock:
            self._usernames_by_id[user["id"]] = user["uniqueId"]

    def _track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _faults_body(self) -> JSON:
        faults = self.faults
        return {"faults": faults.spec(), "latency_ms": faults.latency_ms, "seed": faults.seed}

    def _control(self, raw: bytes) -> Reply:
        try:
            update = _FaultsUpdate.model_validate_json(raw or b"{}")
            seed = self.faults.seed if update.seed is None else update.seed
            self.set_faults(
                Faults.parse(update.faults, latency_ms=update.latency_ms, seed=seed, slow_ms=update.slow_ms)
            )
        except (ValidationError, ValueError) as error:
            return Reply(400, {"error": str(error)})
        return Reply(200, self._faults_body())
