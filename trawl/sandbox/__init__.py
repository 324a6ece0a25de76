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

Rate limits (in the same spec string, off unless given), because the real APIs throttle and a
pipeline that ignores it only finds out in production: ``rpm=N`` allows each API key (TikAPI's
``X-API-KEY``, Zyte's Basic-auth user) N requests per sliding 60 s window, per API;
``domain-rpm=PLATFORM:N`` (tokopedia, shopee, lazada; once each) allows N Zyte requests per
window for that marketplace's URLs, across keys. Only accepted requests count. A request over a
limit is answered 429 at once (after ``latency_ms``), before any fault is drawn, so it uses no
draw: TikAPI ``"Rate limit exceeded"``, Zyte ``/limits/over-user-limit`` or
``/limits/over-domain-limit``, neither with ``Retry-After``. Changing the faults keeps the
windows. ``call_log()`` records each answer's status and which limit (if any) gave it;
``max_calls_in_window`` measures the accepted rate from such a log.
"""

from trawl.sandbox.faults import (
    DEFAULT_SLOW_MS,
    FAULT_KINDS,
    LIMIT_WINDOW_S,
    Call,
    Faults,
    WindowPeak,
    max_calls_in_window,
)
from trawl.sandbox.server import SandboxServer
from trawl.sandbox.tikapi import decode_sec_uid, encode_sec_uid, user_exists, video_count

__all__ = [
    "DEFAULT_SLOW_MS",
    "FAULT_KINDS",
    "LIMIT_WINDOW_S",
    "Call",
    "Faults",
    "SandboxServer",
    "WindowPeak",
    "decode_sec_uid",
    "encode_sec_uid",
    "max_calls_in_window",
    "user_exists",
    "video_count",
]
