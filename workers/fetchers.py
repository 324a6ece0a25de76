"""One fetcher per platform/kind behind one small Protocol, and the registry that picks it.
A fetcher turns a WorkItem into records (and, for paginated kinds, a follow-up WorkItem)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from models import AccountData, ProductData, VideoData, WorkItem
from models.normalise import InvalidTarget, normalise_product_url
from workers.upstream import DomainRefused, Private, Unparseable
from workers.upstream.http import Budget
from workers.upstream.tiktok import PostsRefused, TikApi
from workers.upstream.zyte import ZyteApi


@dataclass(frozen=True)
class Found:
    item_key: str
    data: AccountData | VideoData | ProductData
    status: str = "ok"
    unparsed: tuple[str, ...] = ()  # data fields left None because the upstream's value did not parse


@dataclass
class Fetched:
    records: list[Found] = field(default_factory=list)
    follow_up: WorkItem | None = None
    unparsed: list[str] = field(default_factory=list)  # for the item's warning and metric

    @property
    def last_page(self) -> bool:
        return self.follow_up is None


class Fetcher(Protocol):
    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched: ...


class TikTokAccountFetcher:
    def __init__(self, api: TikApi) -> None:
        self._api = api

    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched:
        account = await self._api.check(budget, item.target)
        # A private account's profile is still public: keep the data, flag the status.
        status = "private" if account.data.private else "ok"
        found = Found(item.item_key, account.data, status, tuple(account.unparsed))
        return Fetched([found], unparsed=list(account.unparsed))


class TikTokVideosFetcher:
    """Pages /public/posts a bounded number of pages per message, then hands the cursor on in
    a follow-up message, so no invocation runs long however many videos an account has."""

    def __init__(self, api: TikApi, max_pages: int, max_videos: int) -> None:
        self._api = api
        self._max_pages = max_pages
        self._max_videos = max_videos

    async def fetch(self, item: WorkItem, budget: Budget) -> Fetched:
        sec_uid, key_proven = item.sec_uid, False
        if sec_uid is None:
            sec_uid, key_proven = await self._sec_uid(item, budget), True
        fetched, cursor, records, unparsed = item.fetched, item.cursor, [], []
        for _ in range(self._max_pages):
            try:
                page = await self._api.posts(budget, sec_uid, cursor)
            except PostsRefused as refused:
                if not key_proven:  # a later page: the same key must still open the profile
                    await self._sec_uid(item, budget)
                raise Private(f"@{item.target}'s videos are private ({refused})") from refused
            take = page.videos[: self._max_videos - fetched]
            records += [Found(v.data.id, v.data, unparsed=tuple(v.unparsed)) for v in take]
            unparsed += page.unparsed + [name for v in take for name in v.unparsed]
            fetched += len(take)
            cursor = page.cursor
            if cursor is None or fetched >= self._max_videos:
                return Fetched(records, unparsed=unparsed)
        update = {
            "cursor": cursor,
            "page": item.page + self._max_pages,
            "fetched": fetched,
            "sec_uid": sec_uid,
        }
        return Fetched(records, follow_up=item.model_copy(update=update), unparsed=unparsed)

    async def _sec_uid(self, item: WorkItem, budget: Budget) -> str:
        account = (await self._api.check(budget, item.target)).data
        if account.private:
            raise Private(f"@{item.target} is private")
        if not account.sec_uid:
            raise Unparseable("TikAPI profile without userInfo.user.secUid, which its videos need")
        return account.sec_uid


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
        product = await self._api.product(budget, url)
        found = Found(item.item_key, product.data, unparsed=tuple(product.unparsed))
        return Fetched([found], unparsed=list(product.unparsed))
