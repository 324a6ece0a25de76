"""One fetcher per platform/kind behind one small Protocol, and the registry that picks it.
A fetcher turns a WorkItem into records (and, for paginated kinds, a follow-up WorkItem)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from models import AccountData, ProductData, VideoData, WorkItem
from models.normalise import InvalidTarget, normalise_product_url
from workers.upstream import DomainRefused, Private
from workers.upstream.http import Budget
from workers.upstream.tiktok import TikApi
from workers.upstream.zyte import ZyteApi


@dataclass(frozen=True)
class Found:
    item_key: str
    data: AccountData | VideoData | ProductData
    status: str = "ok"


@dataclass
class Fetched:
    records: list[Found] = field(default_factory=list)
    follow_up: WorkItem | None = None


class Fetcher(Protocol):
    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched: ...


class TikTokAccountFetcher:
    def __init__(self, api: TikApi) -> None:
        self._api = api

    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched:
        account = await self._api.check(budget, item.target)
        # A private account's profile is still public: keep the data, flag the status.
        return Fetched([Found(item.item_key, account, "private" if account.private else "ok")])


class TikTokVideosFetcher:
    """Pages /public/posts a bounded number of pages per message, then hands the cursor on in
    a follow-up message, so no invocation runs long however many videos an account has."""

    def __init__(self, api: TikApi, max_pages: int, max_videos: int) -> None:
        self._api = api
        self._max_pages = max_pages
        self._max_videos = max_videos

    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched:
        sec_uid = item.sec_uid
        if sec_uid is None:
            account = await self._api.check(budget, item.target)
            if account.private:
                raise Private(f"@{item.target} is private")
            sec_uid = account.sec_uid
        fetched, cursor, records = item.fetched, item.cursor, []
        for _ in range(self._max_pages):
            page = await self._api.posts(budget, sec_uid, cursor)
            take = page.videos[: self._max_videos - fetched]
            records += [Found(video.id, video) for video in take]
            fetched += len(take)
            cursor = page.cursor
            if cursor is None or fetched >= self._max_videos:
                return Fetched(records)
        update = {
            "cursor": cursor,
            "page": item.page + self._max_pages,
            "fetched": fetched,
            "sec_uid": sec_uid,
        }
        return Fetched(records, follow_up=item.model_copy(update=update))


class ProductFetcher:
    """Tokopedia, Shopee and Lazada: one Zyte adapter, one allow-list per platform, checked
    again here so that no other host is ever sent to Zyte, whatever a message says."""

    def __init__(self, api: ZyteApi, platform: str) -> None:
        self._api = api
        self._platform = platform

    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched:
        try:
            url = normalise_product_url(self._platform, item.target).value
        except InvalidTarget as exc:
            raise DomainRefused(str(exc)) from exc
        return Fetched([Found(item.item_key, await self._api.product(budget, url))])
