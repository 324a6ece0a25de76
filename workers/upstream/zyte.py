"""Zyte API over httpx (API_BRIEF.md section 6: not the zyte-api client, whose retry policy can
outlive a Lambda). POST /v1/extract {"url", "product": true}, Basic auth with the key as user."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from models import ProductData
from workers.upstream import Gone, NotAProduct, NotFound, Unavailable
from workers.upstream.http import Budget, request_json

# Below this metadata.probability Zyte is saying "this page is not a product".
MIN_PROBABILITY = 0.5


def extract_request(url: str) -> dict[str, Any]:
    """The documented body for automatic product extraction."""
    return {"url": url, "product": True}


class ZyteApi:
    def __init__(self, client: httpx.AsyncClient, api_url: str, api_key: Callable[[], str]) -> None:
        self._client = client
        self._api_url = api_url
        self._api_key = api_key

    async def product(self, budget: Budget, url: str) -> ProductData:
        body = await request_json(
            self._client,
            budget,
            "POST",
            self._api_url,
            json=extract_request(url),
            auth=httpx.BasicAuth(self._api_key(), ""),
        )
        # A 200 from Zyte says nothing about the target site: check its status and the
        # probability that the page is a product before calling it one.
        site_status = int(body.get("statusCode") or 200)
        if site_status in (404, 410):
            raise NotFound(f"the shop answered {site_status} for this product page")
        if site_status >= 500:
            raise Unavailable(f"the shop answered {site_status}")
        if site_status >= 400:
            raise Gone(f"the shop answered {site_status}")
        product = body.get("product")
        if not isinstance(product, dict):
            raise NotAProduct("Zyte returned no product for this page")
        data = product_data(product)
        if data.probability is not None and data.probability < MIN_PROBABILITY:
            raise NotAProduct(f"Zyte's product probability is {data.probability:.2f}")
        return data


def _price(value: Any) -> str | None:
    """Prices stay decimal strings; anything that is not one is left out rather than guessed."""
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return str(number) if number.is_finite() and number >= 0 else None


def product_data(product: dict[str, Any]) -> ProductData:
    rating = product.get("aggregateRating") or {}
    metadata = product.get("metadata") or {}
    review_count = rating.get("reviewCount")
    return ProductData(
        name=product.get("name"),
        price=_price(product.get("price")),
        regular_price=_price(product.get("regularPrice")),
        currency=product.get("currency"),
        availability=product.get("availability"),
        sku=product.get("sku"),
        brand=(product.get("brand") or {}).get("name"),
        rating=float(rating["ratingValue"]) if rating.get("ratingValue") is not None else None,
        review_count=int(review_count) if review_count is not None else None,
        canonical_url=product.get("canonicalUrl") or product.get("url"),
        probability=float(metadata["probability"]) if metadata.get("probability") is not None else None,
    )
