"""TikAPI over httpx, not its SDK (which turns TLS verification off and has no timeout):
GET /public/check and /public/posts with the X-API-KEY header.

TikAPI does not document its error codes, so the rule is the shape of the answer: a 4xx whose
body is TikAPI's JSON (`status` / `message`) is TikAPI speaking about the item, and anything
else is not TikAPI at all (see workers/upstream/http.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from models import AccountData, VideoData
from workers.upstream import (
    BadCredentials,
    BadTarget,
    Gone,
    NotFound,
    Unavailable,
    Unparseable,
)
from workers.upstream.fields import Fields
from workers.upstream.http import Api, ApiError, Budget, request_json

PAGE_SIZE = 30  # TikAPI's maximum `count` for /public/posts


def _tikapi_error(body: object) -> bool:
    """TikAPI's error body: a JSON object with a text `message` and/or `status`."""
    if not isinstance(body, dict):
        return False
    named = [body[k] for k in ("message", "status") if k in body]
    return bool(named) and all(isinstance(value, str) for value in named)


TIKAPI = Api("TikAPI", "TikApiBaseUrl (--tikapi-url)", _tikapi_error)


class PostsRefused(Exception):
    """A 403 in TikAPI's shape on /public/posts: the account's videos are private, unless the
    key is bad. The fetcher tells the two apart by checking the account with the same key."""


@dataclass(frozen=True)
class Account:
    data: AccountData
    unparsed: list[str] = field(default_factory=list)  # data fields left None (did not parse)


@dataclass(frozen=True)
class Video:
    data: VideoData
    unparsed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PostsPage:
    videos: list[Video]
    cursor: str | None  # None when the account has no more videos
    unparsed: list[str] = field(default_factory=list)  # the page's own: "video.id" per video skipped


def _item_answer(error: ApiError, path: str) -> Exception:
    """What TikAPI's own 4xx says about the item."""
    detail = f"TikAPI answered {path} with {error.status}: {str(error.body.get('message', ''))[:200]}"
    if error.status in (401, 402) or (error.status == 403 and path != "/public/posts"):
        return BadCredentials(f"{detail} (is the API key right?)")
    if error.status == 403:
        return PostsRefused(detail)
    if error.status == 404:
        return NotFound(detail)
    if error.status in (400, 422):
        return BadTarget(detail)
    return Gone(detail)


class TikApi:
    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: Callable[[], str]) -> None:
        self._client = client
        self._base_url = base_url
        self._api_key = api_key

    async def _get(self, budget: Budget, path: str, params: dict[str, Any]) -> dict[str, Any]:
        headers = {"X-API-KEY": self._api_key(), "Accept": "application/json"}
        try:
            body = await request_json(
                self._client, budget, TIKAPI, "GET", self._base_url + path, params=params, headers=headers
            )
        except ApiError as error:
            raise _item_answer(error, path) from error
        if body.get("status") not in (None, "success"):
            raise Unavailable(f"TikAPI answered {path} with status {body.get('status')!r}")
        return body

    async def check(self, budget: Budget, username: str) -> Account:
        body = await self._get(budget, "/public/check", {"username": username})
        return account_data(body.get("userInfo"))

    async def posts(self, budget: Budget, sec_uid: str, cursor: str | None) -> PostsPage:
        params: dict[str, Any] = {"secUid": sec_uid, "count": PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        body = await self._get(budget, "/public/posts", params)
        items = body.get("itemList") or []
        if not isinstance(items, list):
            raise Unparseable("TikAPI posts page whose itemList is not a list")
        videos = [video_data(item) for item in items]
        found = [video for video in videos if video is not None]
        next_cursor = str(body.get("cursor") or "")
        more = bool(body.get("hasMore")) and next_cursor.isdigit() and next_cursor != (cursor or "")
        return PostsPage(found, next_cursor if more else None, ["video.id"] * (len(videos) - len(found)))


def account_data(user_info: Any) -> Account:
    """A profile's fields. `userInfo.user` with its id and uniqueId identifies the account; a
    profile without them is not an answer about this account at all."""
    user = user_info.get("user") if isinstance(user_info, dict) else None
    if not isinstance(user, dict) or not user.get("id") or not isinstance(user.get("uniqueId"), str):
        raise Unparseable("TikAPI profile without userInfo.user (id, uniqueId)")
    f = Fields()
    assert isinstance(user_info, dict)
    stats = f.mapping(user_info.get("stats"), "stats")
    data = AccountData(
        id=str(user["id"]),
        unique_id=user["uniqueId"],
        sec_uid=f.text(user.get("secUid"), "sec_uid"),
        nickname=f.text(user.get("nickname"), "nickname"),
        verified=f.flag(user.get("verified"), "verified"),
        private=f.flag(user.get("privateAccount"), "private"),
        followers=f.integer(stats.get("followerCount"), "followers"),
        following=f.integer(stats.get("followingCount"), "following"),
        likes=f.integer(stats.get("heartCount", stats.get("heart")), "likes"),
        videos=f.integer(stats.get("videoCount"), "videos"),
    )
    return Account(data, f.unparsed)


def video_data(item: Any) -> Video | None:
    """One video of a posts page; None for one without an id, which could never be told
    apart from the others (its record's key is the id)."""
    video_id = item.get("id") if isinstance(item, dict) else None
    if not video_id or not isinstance(video_id, str | int) or isinstance(video_id, bool):
        return None
    assert isinstance(item, dict)
    f = Fields()
    stats = f.mapping(item.get("stats"), "stats")
    author = f.mapping(item.get("author"), "author")
    data = VideoData(
        id=str(video_id),
        author=f.text(author.get("uniqueId"), "author"),
        description=f.text(item.get("desc"), "description"),
        created_at=f.epoch_seconds(item.get("createTime"), "created_at"),
        plays=f.integer(stats.get("playCount"), "plays"),
        likes=f.integer(stats.get("diggCount"), "likes"),
        comments=f.integer(stats.get("commentCount"), "comments"),
        shares=f.integer(stats.get("shareCount"), "shares"),
    )
    return Video(data, f.unparsed)
