"""TikAPI over httpx (API_BRIEF.md section 6: not the SDK, which disables TLS verification and
has no timeout). GET /public/check and /public/posts with the X-API-KEY header."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from models import AccountData, VideoData
from workers.upstream import Unavailable
from workers.upstream.http import Budget, request_json

PAGE_SIZE = 30  # TikAPI's maximum `count` for /public/posts


@dataclass(frozen=True)
class PostsPage:
    videos: list[VideoData]
    cursor: str | None  # None when the account has no more videos


class TikApi:
    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: Callable[[], str]) -> None:
        self._client = client
        self._base_url = base_url
        self._api_key = api_key

    async def _get(self, budget: Budget, path: str, params: dict[str, Any]) -> dict[str, Any]:
        headers = {"X-API-KEY": self._api_key(), "Accept": "application/json"}
        body = await request_json(
            self._client, budget, "GET", self._base_url + path, params=params, headers=headers
        )
        if body.get("status") not in (None, "success"):
            raise Unavailable(f"TikAPI answered {path} with status {body.get('status')!r}")
        return body

    async def check(self, budget: Budget, username: str) -> AccountData:
        body = await self._get(budget, "/public/check", {"username": username})
        try:
            return account_data(body["userInfo"])
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable("TikAPI profile without userInfo.user/stats") from exc

    async def posts(self, budget: Budget, sec_uid: str, cursor: str | None) -> PostsPage:
        params: dict[str, Any] = {"secUid": sec_uid, "count": PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        body = await self._get(budget, "/public/posts", params)
        try:
            videos = [video_data(item) for item in body.get("itemList") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise Unavailable("TikAPI posts page with malformed items") from exc
        next_cursor = str(body.get("cursor") or "")
        more = bool(body.get("hasMore")) and next_cursor.isdigit() and next_cursor != (cursor or "")
        return PostsPage(videos, next_cursor if more else None)


def account_data(user_info: dict[str, Any]) -> AccountData:
    user, stats = user_info["user"], user_info.get("stats") or {}
    return AccountData(
        id=str(user["id"]),
        unique_id=user["uniqueId"],
        sec_uid=user["secUid"],
        nickname=user.get("nickname") or "",
        verified=bool(user.get("verified")),
        private=bool(user.get("privateAccount")),
        followers=int(stats.get("followerCount") or 0),
        following=int(stats.get("followingCount") or 0),
        likes=int(stats.get("heartCount") or stats.get("heart") or 0),
        videos=int(stats.get("videoCount") or 0),
    )


def video_data(item: dict[str, Any]) -> VideoData:
    stats = item.get("stats") or {}
    return VideoData(
        id=str(item["id"]),
        author=(item.get("author") or {}).get("uniqueId", ""),
        description=item.get("desc") or "",
        created_at=dt.datetime.fromtimestamp(int(item["createTime"]), dt.UTC),
        plays=int(stats.get("playCount") or 0),
        likes=int(stats.get("diggCount") or 0),
        comments=int(stats.get("commentCount") or 0),
        shares=int(stats.get("shareCount") or 0),
    )
