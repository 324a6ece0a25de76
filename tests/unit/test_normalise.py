"""models.normalise: what analysts type -> the target trawl fetches, or the reason it never will."""

from __future__ import annotations

import pytest

from models.normalise import InvalidTarget, normalise

SAME_ACCOUNT = ["some.user", "@Some.User", "  @some.user ", "SOME.USER", "@@some.user",
                "https://www.tiktok.com/@Some.User?lang=en", "tiktok.com/@some.user/",
                "http://m.tiktok.com/@some.user/video/123", "some.user\u200b"]  # fmt: skip


@pytest.mark.parametrize("raw", SAME_ACCOUNT)
def test_spellings_of_one_username_become_one_target(raw: str) -> None:
    target = normalise("tiktok", "account", raw)
    assert (target.value, target.item_key) == ("some.user", "some.user")


# (platform, spellings that must collapse, expected canonical URL, expected item key or None)
SAME_PRODUCT = [
    (
        "tokopedia",
        [
            "https://www.tokopedia.com/shop/gadget-x",
            "tokopedia.com/shop/gadget-x/",
            "https://m.tokopedia.com/shop/gadget-x?utm_source=ig&utm_medium=social",
            "HTTPS://WWW.TOKOPEDIA.COM/shop/gadget-x#reviews",
            "http://www.tokopedia.com//shop/gadget-x?extParam=ivf%3Dfalse",
        ],
        "https://www.tokopedia.com/shop/gadget-x",
        None,
    ),
    (
        "shopee",
        [
            "https://shopee.co.id/Gadget-X-i.123.456",
            "https://shopee.co.id/Gadget-X-i.123.456?sp_atk=abc&xptdk=def",
            "www.shopee.co.id/product/123/456/",
            "https://m.shopee.co.id/Other-Title-i.123.456",
        ],
        None,
        "id-123-456",
    ),
    (
        "lazada",
        [
            "https://www.lazada.co.id/products/gadget-x-i789-s1011.html",
            "https://www.lazada.co.id/products/gadget-x-i789-s1011.html?spm=a2o4j.searchlist&utm_source=x",
            "lazada.co.id/products/gadget-x-i789.html",
        ],
        None,
        "id-789",
    ),
]


@pytest.mark.parametrize(("platform", "spellings", "canonical", "key"), SAME_PRODUCT)
def test_spellings_of_one_product_become_one_item(
    platform: str, spellings: list[str], canonical: str | None, key: str | None
) -> None:
    targets = [normalise(platform, "product", raw) for raw in spellings]
    assert len({t.item_key for t in targets}) == 1, targets
    assert all(t.value.startswith("https://") and "?" not in t.value for t in targets)
    if canonical:
        assert {t.value for t in targets} == {canonical}
    if key:
        assert targets[0].item_key == key


REFUSED = [
    ("tiktok", "bad name", "invalid username 'bad name'"),
    ("tiktok", "x", "invalid username 'x'"),
    ("tiktok", "ends.with.dot.", "not ending in '.'"),
    ("tiktok", "a" * 25, "username is 25 characters long; TikTok allows at most 24"),
    ("tiktok", "   ", "blank value"),
    ("tiktok", "https://evil.example.com/@user", "host 'evil.example.com' is not a TikTok domain"),
    ("tiktok", "https://www.tiktok.com/music/abc", "not a profile link"),
    ("tiktok", "javascript:alert(1)", "URL scheme 'javascript' is not allowed"),
    ("tokopedia", "https://shopee.co.id/x-i.1.2", "host 'shopee.co.id' is not a Tokopedia domain"),
    ("tokopedia", "https://tokopedia.com.evil.io/x", "is not a Tokopedia domain"),
    ("shopee", "file:///etc/passwd", "URL scheme 'file' is not allowed"),
    ("shopee", "javascript:alert(document.cookie)", "URL scheme 'javascript' is not allowed"),
    ("shopee", "ftp://shopee.co.id/x", "URL scheme 'ftp' is not allowed"),
    ("lazada", "http://127.0.0.1/products/x-i1.html", "host '127.0.0.1' is an internal address"),
    ("lazada", "http://169.254.169.254/latest/meta-data/", "host '169.254.169.254' is an internal address"),
    ("lazada", "http://localhost:8080/x", "host 'localhost' is an internal address"),
    ("lazada", "10.0.0.7/products/x-i1.html", "host '10.0.0.7' is an internal address"),
    ("lazada", "http://[::1]/x", "host '::1' is an internal address"),
    ("tokopedia", "https://user:pw@tokopedia.com/x", "carries credentials or a port"),
    ("tokopedia", "https://tokopedia.com:8443/x", "carries credentials or a port"),
    ("tokopedia", "https://tokopedia.com@127.0.0.1/x", "host '127.0.0.1' is an internal address"),
    ("tokopedia", "https://www.tokopedia.com/", "has no product path"),
    ("tokopedia", "https://www.tokopedia.com/shop/a b", "URL contains spaces or control characters"),
    ("tokopedia", "https://www.tokopedia.com/" + "a" * 3000, "URL is 3,026 characters long; at most 2,048"),
    ("shopee", "", "blank value"),
]


@pytest.mark.parametrize(("platform", "raw", "reason"), REFUSED)
def test_unfetchable_values_are_refused_with_a_reason(platform: str, raw: str, reason: str) -> None:
    kind = "account" if platform == "tiktok" else "product"
    with pytest.raises(InvalidTarget) as refused:
        normalise(platform, kind, raw)
    assert reason in str(refused.value)


def test_other_subdomains_stay_distinct_sites() -> None:
    # Only bare/www./m. are one site; a seller subdomain is another page and keeps its host.
    target = normalise("tokopedia", "product", "https://seller.tokopedia.com/edu/x")
    assert target.value == "https://seller.tokopedia.com/edu/x"
