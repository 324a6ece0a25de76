"""trawl's own upstream clients against the references: the real `tikapi` SDK gets the same
answers from the sandbox as trawl's TikApi client, and the Zyte request trawl sends has the
documented shape (POST /v1/extract, Basic auth with the key as the user name)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from tikapi import TikAPI

from trawl.sandbox import SandboxServer
from workers.upstream import Misconfigured, NotAProduct, NotFound
from workers.upstream.http import Budget, make_client
from workers.upstream.tiktok import TikApi, account_data, video_data
from workers.upstream.zyte import Product, ZyteApi

KEY = "sandboxkey1234567890"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(tikapi_key=KEY) as server:
        yield server


def _budget() -> Budget:
    return Budget(lambda: 60_000, margin_ms=1_000, read_timeout_s=5)


def test_check_matches_the_sdk(sandbox: SandboxServer) -> None:
    sdk = TikAPI(KEY)
    sdk.set(__options__={"base": sandbox.tikapi_url})
    reference = account_data(sdk.public.check(username="contract.user").json()["userInfo"]).data

    async def ours() -> object:
        async with make_client(2, 5) as client:
            account = await TikApi(client, sandbox.tikapi_url, lambda: KEY).check(_budget(), "contract.user")
            return account.data

    assert asyncio.run(ours()) == reference


def test_paginated_posts_match_the_sdk(sandbox: SandboxServer) -> None:
    sdk = TikAPI(KEY)
    sdk.set(__options__={"base": sandbox.tikapi_url})
    sec_uid = sdk.public.check(username="videos_70").json()["userInfo"]["user"]["secUid"]
    reference = []
    response = sdk.public.posts(secUid=sec_uid)
    while response is not None:
        reference += [v.data for item in response.json()["itemList"] if (v := video_data(item))]
        response = response.next_items()

    async def ours() -> list[object]:
        videos: list[object] = []
        cursor: str | None = None
        async with make_client(2, 5) as client:
            api = TikApi(client, sandbox.tikapi_url, lambda: KEY)
            while True:
                page = await api.posts(_budget(), sec_uid, cursor)
                videos += [v.data for v in page.videos]
                if page.cursor is None:
                    return videos
                cursor = page.cursor

    assert len(reference) == 70
    assert asyncio.run(ours()) == reference


def test_zyte_request_has_the_documented_shape() -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        product = {
            "url": "https://shopee.sg/x-i.1.2",
            "name": "X",
            "price": "12.50",
            "metadata": {"probability": 0.9},
        }
        return httpx.Response(
            200, json={"url": "https://shopee.sg/x-i.1.2", "statusCode": 200, "product": product}
        )

    async def call() -> Product:
        async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
            api = ZyteApi(client, "https://api.zyte.com/v1/extract", lambda: "zytekey123")
            return await api.product(_budget(), "https://shopee.sg/x-i.1.2")

    data = asyncio.run(call()).data
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "https://api.zyte.com/v1/extract"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"zytekey123:").decode()
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"url": "https://shopee.sg/x-i.1.2", "product": True}
    assert data.price == "12.50"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://www.tokopedia.com/shop/notfound-thing", NotFound),
        ("https://www.tokopedia.com/shop", NotAProduct),
        # Zyte's own 451 (it refuses the domain) is about the request, not the item: retried.
        ("https://www.bukalapak.com/p/x", Misconfigured),
    ],
)
def test_zyte_outcomes_from_the_sandbox(sandbox: SandboxServer, url: str, error: type[Exception]) -> None:
    async def call() -> object:
        async with make_client(2, 5) as client:
            api = ZyteApi(client, sandbox.zyte_url, lambda: "sandboxzytekey123")
            return await api.product(_budget(), url)

    with pytest.raises(error):
        asyncio.run(call())
