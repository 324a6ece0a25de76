"""Unit tests for the sandbox upstream: fault specs, fault draws and deterministic data (no sockets)."""

import base64
import re
from decimal import Decimal

import pytest

from trawl.sandbox import FAULT_KINDS, Faults, decode_sec_uid, encode_sec_uid
from trawl.sandbox.faults import fault_reply
from trawl.sandbox.tikapi import tikapi_check, tikapi_posts
from trawl.sandbox.zyte import zyte_extract, zyte_key_ok

# --------------------------------------------------------------------------- fault specs


def test_parse_reads_rates_latency_and_seed():
    faults = Faults.parse(" 500=0.05, 429=0.1 ,timeout=0.02,", latency_ms=200, seed=7)

    assert faults.rates == {"500": 0.05, "429": 0.1, "timeout": 0.02}
    assert (faults.latency_ms, faults.seed) == (200, 7)
    assert faults.spec() == "429=0.1,500=0.05,timeout=0.02"
    assert Faults.parse(faults.spec()).rates == faults.rates


def test_empty_spec_means_no_faults():
    faults = Faults.parse("")

    assert faults.rates == {}
    assert faults.spec() == ""
    assert all(faults.decide("GET", "/public/check", "alice", n) is None for n in range(500))


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("429=abc", "429=abc"),
        ("429=1.5", "429=1.5"),
        ("429=-0.1", "429=-0.1"),
        ("429=nan", "429=nan"),
        ("999=0.1", "999"),
        ("foo", "foo"),
        ("500=0.1,foo", "foo"),
        ("429=0.1,429=0.2", "given twice"),
        ("429=0.6,500=0.6", "add up to 1.2"),
    ],
)
def test_bad_spec_raises_naming_the_bad_part(spec, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        Faults.parse(spec)


def test_direct_construction_is_validated_too():
    with pytest.raises(ValueError, match="418"):
        Faults({"418": 0.1})
    with pytest.raises(ValueError, match="latency_ms"):
        Faults({}, latency_ms=-1)


def test_equal_faults_compare_and_hash_alike():
    assert Faults.parse("500=0.5,429=0.1") == Faults({"429": 0.1, "500": 0.5})
    assert len({Faults.parse("500=0.5,429=0.1"), Faults({"429": 0.1, "500": 0.5})}) == 1


def test_faults_keep_their_own_copy_of_the_rates():
    rates = {"429": 0.5}
    faults = Faults(rates)
    rates["429"] = 1.0

    assert faults.rates == {"429": 0.5}


def test_every_documented_kind_is_accepted():
    faults = Faults.parse(",".join(f"{kind}=0.1" for kind in FAULT_KINDS))

    assert set(faults.rates) == set(FAULT_KINDS)


# --------------------------------------------------------------------------- fault draws


def test_decide_is_a_pure_function_of_its_inputs():
    faults = Faults.parse("429=0.3,500=0.3", seed=3)
    draws = [faults.decide("GET", "/public/check", "alice", n) for n in range(50)]

    assert draws == [
        Faults.parse("429=0.3,500=0.3", seed=3).decide("GET", "/public/check", "alice", n) for n in range(50)
    ]
    assert {"429", "500", None} == set(draws)


def test_seed_changes_the_sequence():
    first = [Faults.parse("500=0.5", seed=1).decide("GET", "/p", "t", n) for n in range(64)]
    second = [Faults.parse("500=0.5", seed=2).decide("GET", "/p", "t", n) for n in range(64)]

    assert first != second


def test_rate_one_always_faults_and_rate_zero_never():
    always = Faults.parse("503=1.0")
    never = Faults.parse("503=0")

    assert {always.decide("POST", "/v1/extract", f"u{n}", n) for n in range(300)} == {"503"}
    assert {never.decide("POST", "/v1/extract", f"u{n}", n) for n in range(300)} == {None}


def test_observed_rates_follow_the_spec():
    faults = Faults.parse("429=0.1,500=0.05,timeout=0.02", seed=11)
    draws = [faults.decide("GET", "/public/check", f"user{n % 97}", n // 97) for n in range(20_000)]

    for kind, rate in faults.rates.items():
        assert draws.count(kind) / len(draws) == pytest.approx(rate, abs=0.01)


# --------------------------------------------------------------------------- TikAPI data


def check(username: str, known: dict[str, str] | None = None):
    return tikapi_check({"username": username}, known or {})


def posts(username: str, count: int = 30, cursor: str | None = None):
    params = {"secUid": encode_sec_uid(username), "count": str(count)}
    return tikapi_posts(params | ({"cursor": cursor} if cursor is not None else {}))


def test_sec_uid_round_trips_and_rejects_strangers():
    sec_uid = encode_sec_uid("some.user_1")

    assert sec_uid.startswith("MS4wLjABAAAA") and "=" not in sec_uid
    assert decode_sec_uid(sec_uid) == "some.user_1"
    assert decode_sec_uid("MS4wLjABAAAA") is None
    assert decode_sec_uid("MS4wLjABAAAA!!!!") is None
    assert decode_sec_uid("MS4wLjABAAAA" + base64.urlsafe_b64encode(b"bad name!").decode()) is None
    assert decode_sec_uid("MS4wLjABAAAAl6_tM3Xk7V4K2pNoTrealone") is None


def test_same_username_gives_the_same_profile_whatever_the_case():
    first, again, shouted = check("alice"), check("alice"), check("ALICE")

    assert first.status == 200
    assert first.body == again.body == shouted.body
    user, stats = first.body["userInfo"]["user"], first.body["userInfo"]["stats"]
    assert user["uniqueId"] == "alice" and user["secUid"] == encode_sec_uid("alice")
    assert re.fullmatch(r"\d{19}", user["id"])
    assert user["avatarMedium"].startswith("https://p16-sign.tiktokcdn.com/")
    assert user["privateAccount"] is False
    assert 0 <= stats["videoCount"] <= 80
    assert all(
        isinstance(stats[k], int) for k in ("followerCount", "followingCount", "heartCount", "diggCount")
    )
    assert check("bob").body != first.body


@pytest.mark.parametrize("username", ["ghost", "ghost_42", "missing.person", "bad name"])
def test_unknown_users_are_404(username):
    reply = check(username)

    assert (reply.status, reply.body) == (404, {"status": "error", "message": "User not found"})


def test_check_without_a_user_is_400():
    reply = tikapi_check({}, {})

    assert (reply.status, reply.body) == (
        400,
        {"status": "error", "message": "username or user_id is required"},
    )


def test_private_user_is_found_but_its_posts_are_403():
    assert check("private_anna").body["userInfo"]["user"]["privateAccount"] is True

    reply = posts("private_anna")
    assert (reply.status, reply.body["message"]) == (403, "This account is private")


def test_user_id_works_once_the_server_has_seen_the_user():
    user = check("alice").body["userInfo"]["user"]

    assert tikapi_check({"user_id": user["id"]}, {user["id"]: "alice"}).body == check("alice").body
    assert tikapi_check({"user_id": user["id"]}, {}).status == 404


def test_videos_n_pages_as_30_plus_15_newest_first():
    assert check("videos_45").body["userInfo"]["stats"]["videoCount"] == 45

    first = posts("videos_45").body
    second = posts("videos_45", cursor=first["cursor"]).body

    assert (len(first["itemList"]), first["hasMore"]) == (30, True)
    assert (len(second["itemList"]), second["hasMore"]) == (15, False)
    items = first["itemList"] + second["itemList"]
    times = [item["createTime"] for item in items]
    assert times == sorted(times, reverse=True) and len(set(times)) == 45
    assert len({item["id"] for item in items}) == 45
    assert all(
        re.fullmatch(r"\d{19}", item["id"]) and int(item["id"]) >> 32 == item["createTime"] for item in items
    )
    assert re.fullmatch(r"\d+", first["cursor"]) and int(first["cursor"]) == times[29] * 1000
    assert items[0]["author"]["uniqueId"] == "videos_45"
    assert set(items[0]["stats"]) == {"playCount", "diggCount", "commentCount", "shareCount", "collectCount"}
    assert items[0]["video"]["videoQuality"] == "normal"


def test_cursor_zero_is_the_first_page_and_small_pages_chain():
    assert posts("videos_12", cursor="0").body == posts("videos_12").body

    seen, cursor, has_more = [], None, True
    while has_more:
        body = posts("videos_12", count=5, cursor=cursor).body
        seen += [item["id"] for item in body["itemList"]]
        cursor, has_more = body["cursor"], body["hasMore"]
    assert seen == [item["id"] for item in posts("videos_12").body["itemList"]]


def test_huge_account_keeps_19_digit_ids():
    body = posts("videos_999999").body

    assert body["hasMore"] is True
    assert all(re.fullmatch(r"\d{19}", item["id"]) for item in body["itemList"])


def test_empty_account_has_no_more():
    assert posts("videos_0").body == {"status": "success", "itemList": [], "cursor": "0", "hasMore": False}


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"count": "30"}, 400, "secUid is required"),
        ({"secUid": encode_sec_uid("alice"), "count": "31"}, 400, "count must be between 1 and 30"),
        ({"secUid": encode_sec_uid("alice"), "count": "0"}, 400, "count must be between 1 and 30"),
        ({"secUid": encode_sec_uid("alice"), "count": "ten"}, 400, "count must be between 1 and 30"),
        ({"secUid": encode_sec_uid("alice"), "cursor": "17e9"}, 400, "cursor must be a string of digits"),
        ({"secUid": encode_sec_uid("ghost_1")}, 404, "User not found"),
        ({"secUid": "MS4wLjABAAAAnot-ours"}, 404, "User not found"),
    ],
)
def test_bad_posts_requests(params, status, message):
    reply = tikapi_posts(params)

    assert (reply.status, reply.body) == (status, {"status": "error", "message": message})


# --------------------------------------------------------------------------- Zyte data


def extract(url: str, **extra):
    return zyte_extract({"url": url, "product": True} | extra)


def without_date(body: dict) -> dict:
    product = dict(body["product"])
    product["metadata"] = {k: v for k, v in product["metadata"].items() if k != "dateDownloaded"}
    return body | {"product": product}


def test_product_page_gives_a_full_deterministic_product():
    url = "https://www.tokopedia.com/tokoabc/kaos-polos-cotton-combed-30s?extParam=ivf%3Dfalse"
    reply = extract(url)

    assert reply.status == 200 and reply.content_type == "application/json"
    assert reply.body["statusCode"] == 200
    product = reply.body["product"]
    assert product["url"] == url
    assert product["canonicalUrl"] == "https://www.tokopedia.com/tokoabc/kaos-polos-cotton-combed-30s"
    assert product["name"] == "Kaos Polos Cotton Combed 30s"
    assert re.fullmatch(r"\d+\.\d{2}", product["price"])
    assert "regularPrice" not in product or Decimal(product["regularPrice"]) > Decimal(product["price"])
    assert (product["currency"], product["currencyRaw"]) == ("IDR", "Rp")
    assert product["availability"] in ("InStock", "OutOfStock")
    assert product["mainImage"] == product["images"][0]
    assert 0.97 <= product["metadata"]["probability"] <= 0.99
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", product["metadata"]["dateDownloaded"])
    assert product["aggregateRating"]["bestRating"] == 5.0
    assert without_date(extract(url).body) == without_date(reply.body)


def test_tracking_parameters_do_not_change_the_product():
    plain = extract("https://shopee.co.id/Serum-Wajah-i.123.456").body["product"]
    tracked = extract("https://shopee.co.id/Serum-Wajah-i.123.456?sp_atk=abc&xptdk=1").body["product"]

    assert plain["productId"] == tracked["productId"] == "456"
    assert (plain["name"], plain["price"], plain["sku"]) == (
        tracked["name"],
        tracked["price"],
        tracked["sku"],
    )


@pytest.mark.parametrize(
    ("url", "currency"),
    [
        ("https://www.tokopedia.com/shop/item", "IDR"),
        ("https://shopee.com.my/Item-i.1.2", "MYR"),
        ("https://shopee.sg/Item-i.1.2", "SGD"),
        ("https://shopee.ph/Item-i.1.2", "PHP"),
        ("https://shopee.co.th/Item-i.1.2", "THB"),
        ("https://shopee.vn/Item-i.1.2", "VND"),
        ("https://shopee.tw/Item-i.1.2", "TWD"),
        ("https://www.lazada.com.ph/products/item-i123-s456.html", "PHP"),
        ("https://www.lazada.co.id/products/item-i123-s456.html", "IDR"),
    ],
)
def test_currency_follows_the_domain(url, currency):
    assert extract(url).body["product"]["currency"] == currency


@pytest.mark.parametrize(
    "url", ["https://example.com/a/b", "https://nottokopedia.com/a/b", "https://tokopedia.com.evil.io/a/b"]
)
def test_off_domain_urls_are_451(url):
    reply = extract(url)

    assert (reply.status, reply.content_type) == (451, "application/problem+json")
    assert reply.body["type"] == "/download/domain-forbidden"
    assert reply.body["blockedDomain"] == url.split("/")[2]


def test_target_404_and_non_product_pages_are_200_with_low_probability():
    gone = extract("https://www.tokopedia.com/tokoabc/notfound-thing").body
    shop = extract("https://www.tokopedia.com/someshop").body
    home = extract("https://shopee.co.id/").body

    assert (gone["statusCode"], gone["product"]["metadata"]["probability"]) == (404, 0.02)
    assert (shop["statusCode"], shop["product"]["metadata"]["probability"]) == (200, 0.05)
    assert home["product"]["metadata"]["probability"] == 0.05


@pytest.mark.parametrize(
    "query",
    [
        None,
        [],
        {"product": True},
        {"url": "https://www.tokopedia.com/a/b"},
        {"url": "not a url", "product": True},
    ],
)
def test_bad_extract_requests_are_400_problems(query):
    reply = zyte_extract(query)

    assert (reply.status, reply.content_type, reply.body["status"]) == (400, "application/problem+json", 400)


def test_zyte_key_is_the_basic_auth_user():
    def basic(user_pass: str) -> str:
        return "Basic " + base64.b64encode(user_pass.encode()).decode()

    assert zyte_key_ok(basic("sandboxzytekey123:"), "sandboxzytekey123")
    assert not zyte_key_ok(basic("otherkey:"), "sandboxzytekey123")
    assert not zyte_key_ok("Bearer sandboxzytekey123", "sandboxzytekey123")
    assert not zyte_key_ok("Basic %%%", "sandboxzytekey123")
    assert not zyte_key_ok(None, "sandboxzytekey123")


# --------------------------------------------------------------------------- fault answers


def test_fault_answers_speak_each_protocol():
    tik_429, zyte_429 = fault_reply("429", "tikapi"), fault_reply("429", "zyte")
    zyte_520 = fault_reply("520", "zyte")

    assert (tik_429.status, tik_429.headers, tik_429.body) == (
        429,
        {"Retry-After": "1"},
        {"status": "error", "message": "Rate limit exceeded"},
    )
    assert (zyte_429.content_type, zyte_429.body["type"]) == (
        "application/problem+json",
        "/limits/over-user-limit",
    )
    assert (zyte_520.status, zyte_520.headers["Retry-After"]) == (520, "1")
    assert zyte_520.body["type"] == "/download/temporary-error"
    assert fault_reply("503", "tikapi").headers == {"Retry-After": "1"}
    assert fault_reply("500", "tikapi").headers == {}
    assert fault_reply("timeout", "zyte").status == 504
    assert fault_reply("401", "zyte").body["type"] == "/auth/key-not-found"
    assert fault_reply("403", "tikapi").body["message"] == "Invalid API key"


# --------------------------------------------------------------------------- latency spikes ("slow")


def test_slow_is_a_fault_kind_with_its_own_delay():
    faults = Faults.parse("slow=0.25,500=0.1", slow_ms=800)
    default = Faults.parse("slow=0.25")

    assert "slow" in FAULT_KINDS
    assert faults.rates == {"slow": 0.25, "500": 0.1}
    assert (faults.slow_ms, default.slow_ms) == (800, 1500)
    assert Faults.parse(faults.spec(), slow_ms=800) == faults
    assert hash(faults) != hash(Faults.parse(faults.spec(), slow_ms=801))


def test_slow_counts_towards_the_total_rate_and_is_drawn_like_any_kind():
    always = Faults.parse("slow=1.0")

    assert {always.decide("GET", "/public/check", f"u{n}", 0) for n in range(100)} == {"slow"}
    with pytest.raises(ValueError, match="add up to"):
        Faults.parse("slow=0.6,429=0.6")
    with pytest.raises(ValueError, match="slow_ms"):
        Faults.parse("slow=0.1", slow_ms=-1)
