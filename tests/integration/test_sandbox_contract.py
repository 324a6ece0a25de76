"""Contract tests: the sandbox answers the real tikapi SDK and plain httpx as TikAPI and Zyte API would."""

import time
from collections.abc import Iterator

import httpx
import pytest
from tikapi import ResponseException, TikAPI

from trawl.sandbox import Faults, SandboxServer, encode_sec_uid

TIKAPI_KEY = "sandboxkey1234567890"
ZYTE_KEY = "sandboxzytekey123"
PRODUCT_URL = "https://www.tokopedia.com/tokoabc/kaos-polos-cotton-combed-30s"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as running:
        yield running


@pytest.fixture
def faulty() -> Iterator[SandboxServer]:
    """A private server whose faults a test may change freely."""
    with SandboxServer(timeout_hold_s=1) as running:
        yield running


def sdk(server: SandboxServer, key: str = TIKAPI_KEY):
    api = TikAPI(key)
    api.set(__options__={"base": server.tikapi_url})
    return api


def check(server: SandboxServer, username: str, timeout: float = 5) -> httpx.Response:
    return httpx.get(
        f"{server.tikapi_url}/public/check",
        params={"username": username},
        headers={"X-API-KEY": TIKAPI_KEY},
        timeout=timeout,
    )


def extract(server: SandboxServer, url: str, key: str = ZYTE_KEY) -> httpx.Response:
    return httpx.post(server.zyte_url, auth=(key, ""), json={"url": url, "product": True}, timeout=5)


# --------------------------------------------------------------------------- TikAPI


def test_sdk_and_httpx_get_the_same_profile(server):
    via_sdk = sdk(server).public.check(username="alice")
    via_httpx = check(server, "alice")

    assert via_sdk.status_code == via_httpx.status_code == 200
    assert via_httpx.headers["content-type"] == "application/json"
    assert via_sdk.json() == via_httpx.json()
    assert via_sdk.json()["userInfo"]["user"]["uniqueId"] == "alice"


def test_sdk_pages_45_videos_as_30_plus_15(server):
    api = sdk(server)
    profile = api.public.check(username="videos_45").json()["userInfo"]
    first = api.public.posts(secUid=profile["user"]["secUid"])

    second = first.next_items()

    assert profile["stats"]["videoCount"] == 45
    assert [len(page.json()["itemList"]) for page in (first, second)] == [30, 15]
    assert [page.json()["hasMore"] for page in (first, second)] == [True, False]
    assert second.next_items() is None
    plain = httpx.get(
        f"{server.tikapi_url}/public/posts",
        params={"secUid": profile["user"]["secUid"], "count": 30, "cursor": first.json()["cursor"]},
        headers={"X-API-KEY": TIKAPI_KEY},
    )
    assert plain.json() == second.json()


def test_sdk_sees_404_for_a_ghost_user(server):
    with pytest.raises(ResponseException) as raised:
        sdk(server).public.check(username="ghost_of_tiktok")

    assert raised.value.response.status_code == 404
    assert str(raised.value) == "User not found"


def test_wrong_tikapi_key_is_403(server):
    with pytest.raises(ResponseException) as raised:
        sdk(server, key="otherkey1234567890").public.check(username="alice")
    posts = httpx.get(f"{server.tikapi_url}/public/posts", params={"secUid": encode_sec_uid("alice")})

    assert raised.value.response.status_code == 403
    assert (posts.status_code, posts.json()) == (403, {"status": "error", "message": "Invalid API key"})


def test_private_account_posts_are_403(server):
    sec_uid = sdk(server).public.check(username="private_anna").json()["userInfo"]["user"]["secUid"]

    with pytest.raises(ResponseException) as raised:
        sdk(server).public.posts(secUid=sec_uid)

    assert raised.value.response.status_code == 403
    assert str(raised.value) == "This account is private"


def test_user_id_lookup_after_a_check(server):
    user = check(server, "carol").json()["userInfo"]["user"]

    by_id = sdk(server).public.check(user_id=user["id"])

    assert by_id.json()["userInfo"]["user"] == user


def test_same_username_is_identical_across_instances():
    def snapshot(running: SandboxServer) -> tuple[dict, dict]:
        profile = check(running, "dewi.sari").json()
        sec_uid = profile["userInfo"]["user"]["secUid"]
        posts = httpx.get(
            f"{running.tikapi_url}/public/posts",
            params={"secUid": sec_uid, "count": 10},
            headers={"X-API-KEY": TIKAPI_KEY},
        )
        return profile, posts.json()

    with SandboxServer() as one, SandboxServer() as two:
        assert one.url != two.url
        assert snapshot(one) == snapshot(two)


def test_unknown_path_is_404(server):
    assert httpx.get(f"{server.url}/public/nothing-here").status_code == 404


# --------------------------------------------------------------------------- Zyte


def test_zyte_product_with_basic_auth(server):
    response = extract(server, PRODUCT_URL + "?utm_source=x")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["request-id"]
    body = response.json()
    assert body["statusCode"] == 200
    assert body["product"]["canonicalUrl"] == PRODUCT_URL
    assert body["product"]["currency"] == "IDR"


def test_zyte_wrong_key_is_401_problem(server):
    response = extract(server, PRODUCT_URL, key="wrongkey")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/auth/key-not-found"


def test_zyte_off_domain_is_451_with_blocked_domain(server):
    response = extract(server, "https://www.amazon.com/dp/B000000")

    assert response.status_code == 451
    assert response.json()["blockedDomain"] == "www.amazon.com"


def test_zyte_invalid_json_is_400(server):
    response = httpx.post(server.zyte_url, auth=(ZYTE_KEY, ""), content=b"{not json", timeout=5)

    assert (response.status_code, response.json()["status"]) == (400, 400)
    assert response.headers["content-type"] == "application/problem+json"


# --------------------------------------------------------------------------- faults


def test_429_fault_carries_retry_after_on_both_apis(faulty):
    faulty.set_faults(Faults.parse("429=1.0"))

    tikapi = check(faulty, "alice")
    zyte = extract(faulty, PRODUCT_URL)
    with pytest.raises(ResponseException) as raised:
        sdk(faulty).public.check(username="alice")

    assert (tikapi.status_code, tikapi.headers["retry-after"]) == (429, "1")
    assert tikapi.json() == {"status": "error", "message": "Rate limit exceeded"}
    assert (zyte.status_code, zyte.headers["retry-after"]) == (429, "1")
    assert zyte.json()["type"] == "/limits/over-user-limit"
    assert raised.value.response.status_code == 429
    assert faulty.stats == {"requests": 3, "429": 3}


def test_timeout_fault_outlasts_a_short_read_timeout_and_stop_stays_prompt(faulty):
    faulty.set_faults(Faults.parse("timeout=1.0"))

    with pytest.raises(httpx.ReadTimeout):
        check(faulty, "alice", timeout=0.5)
    started = time.monotonic()
    faulty.stop()

    assert time.monotonic() - started < 0.4  # the held request (1 s) must not delay shutdown
    assert faulty.stats["timeout"] == 1


def test_reset_fault_drops_the_connection(faulty):
    faulty.set_faults(Faults.parse("reset=1.0"))

    with pytest.raises(httpx.TransportError) as raised:
        check(faulty, "alice")

    assert not isinstance(raised.value, httpx.TimeoutException)


def test_latency_delays_every_answer(faulty):
    faulty.set_faults(Faults.parse("", latency_ms=200))
    started = time.monotonic()

    response = check(faulty, "alice")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_control_endpoint_changes_faults_from_outside(faulty):
    control = f"{faulty.url}/_sandbox/faults"

    changed = httpx.post(control, json={"faults": "500=1.0", "latency_ms": 0})
    failing = check(faulty, "alice")
    current = httpx.get(control).json()
    rejected = httpx.post(control, json={"faults": "500=abc"})
    httpx.post(control, json={"faults": ""})

    assert changed.status_code == 200
    assert changed.json() == {"faults": "500=1", "latency_ms": 0, "seed": 0}
    assert failing.status_code == 500
    assert current["faults"] == "500=1"
    assert rejected.status_code == 400 and "500=abc" in rejected.json()["error"]
    assert faulty.faults == Faults({})
    assert check(faulty, "alice").status_code == 200
    assert httpx.get(f"{faulty.url}/_sandbox/stats").json() == {"requests": 2, "500": 1}


def test_fault_sequence_per_target_ignores_interleaving():
    faults = Faults.parse("500=0.5", seed=5)

    def statuses(running: SandboxServer, order: list[str]) -> dict[str, list[int]]:
        seen: dict[str, list[int]] = {"alice": [], "bob": []}
        for username in order:
            seen[username].append(check(running, username).status_code)
        return seen

    with SandboxServer(faults=faults) as one, SandboxServer(faults=faults) as two:
        batched = statuses(one, ["alice"] * 6 + ["bob"] * 6)
        interleaved = statuses(two, ["alice", "bob"] * 6)

    assert batched == interleaved
    assert {200, 500} <= set(batched["alice"] + batched["bob"])
