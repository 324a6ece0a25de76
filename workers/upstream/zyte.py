"""Zyte API over httpx, not the zyte-api client (whose retry policy can outlive a Lambda):
POST /v1/extract {"url", "product": true}, Basic auth with the key as the user name.

Zyte speaks about the item only inside a 200: the target site's `statusCode`, and the
probability that the page is a product. Its own 4xx errors (problem+json) are about the
request or the account, never a permanent status for the item."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from models import ProductData
from workers.upstream import (
    BadCredentials,
    Gone,
    Misconfigured,
    NotAProduct,
    NotFound,
    Unavailable,
    Unparseable,
)
from workers.upstream.fields import Fields
from workers.upstream.http import Api, ApiError, Budget, request_json

# Below this metadata.probability Zyte is saying "this page is not a product".
MIN_PROBABILITY = 0.5


def _zyte_error(body: object) -> bool:
    """Zyte's problem+json error body: an object with a text `type`."""
    return isinstance(body, dict) and isinstance(body.get("type"), str)


ZYTE = Api("Zyte API", "ZyteApiUrl (--zyte-url)", _zyte_error)


@dataclass(frozen=True)
class Product:
    data: ProductData
    unparsed: list[str] = field(default_factory=list)


def extract_request(url: str) -> dict[str, Any]:
    """The documented body for automatic product extraction."""
    return {"url": url, "product": True}


def _refusal(error: ApiError) -> Exception:
    kind = str(error.body.get("type", ""))
    detail = f"Zyte API answered {error.status} {kind}: {str(error.body.get('detail', ''))[:200]}"
    if error.status in (401, 402, 403):
        return BadCredentials(f"{detail} (is the API key right?)")
    return Misconfigured(detail)


class ZyteApi:
    def __init__(self, client: httpx.AsyncClient, api_url: str, api_key: Callable[[], str]) -> None:
        self._client = client
        self._api_url = api_url
        self._api_key = api_key

    async def product(self, budget: Budget, url: str) -> Product:
        try:
            body = await request_json(
                self._client,
                budget,
                ZYTE,
                "POST",
                self._api_url,
                json=extract_request(url),
                auth=httpx.BasicAuth(self._api_key(), ""),
            )
        except ApiError as error:
            raise _refusal(error) from error
        # A 200 from Zyte says nothing about the target site: check its status and the
        # probability that the page is a product before calling it one.
        site_status = body.get("statusCode", 200)
        if not isinstance(site_status, int) or isinstance(site_status, bool):
            raise Unparseable(f"Zyte API answer whose statusCode is {site_status!r}")
        if site_status in (404, 410):
            raise NotFound(f"the shop answered {site_status} for this product page")
        if site_status >= 500:
            raise Unavailable(f"the shop answered {site_status}")
        if site_status >= 400:
            raise Gone(f"the shop answered {site_status}")
        product = body.get("product")
        if not isinstance(product, dict):
            raise Unparseable(f"Zyte API answered 200 (the shop {site_status}) without a product")
        found = product_data(product)
        probability = found.data.probability
        if probability is not None and probability < MIN_PROBABILITY:
            raise NotAProduct(f"Zyte's product probability is {probability:.2f}")
        return found


def product_data(product: dict[str, Any]) -> Product:
    f = Fields()
    rating = f.mapping(product.get("aggregateRating"), "rating")
    metadata = f.mapping(product.get("metadata"), "probability")
    brand = f.mapping(product.get("brand"), "brand")
    data = ProductData(
        name=f.text(product.get("name"), "name"),
        price=f.price(product.get("price"), "price"),
        regular_price=f.price(product.get("regularPrice"), "regular_price"),
        currency=f.text(product.get("currency"), "currency"),
        availability=f.text(product.get("availability"), "availability"),
        sku=f.text(product.get("sku"), "sku"),
        brand=f.text(brand.get("name"), "brand"),
        rating=f.number(rating.get("ratingValue"), "rating"),
        review_count=f.integer(rating.get("reviewCount"), "review_count"),
        canonical_url=f.text(product.get("canonicalUrl") or product.get("url"), "canonical_url"),
        probability=f.number(metadata.get("probability"), "probability"),
    )
    return Product(data, f.unparsed)
