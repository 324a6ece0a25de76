"""The sandbox's rate limits: rpm=N per API key and domain-rpm=PLATFORM:N per marketplace, over
sliding 60 s windows of accepted requests, on a real server whose clock the tests move."""

import itertools
import random
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from trawl.sandbox import (
    LIMIT_WINDOW_S,
    Call,
    Faults,
    SandboxServer,
    WindowPeak,
    encode_sec_uid,
    max_calls_in_window,
)
from trawl.sandbox.faults import Scope

TIKAPI_KEY = "sandboxkey1234567890"
ZYTE_KEY = "sandboxzytekey123"
TOKOPEDIA = "https://www.tokopedia.com/some-shop/kaos-polos-hitam"
SHOPEE = "https://shopee.co.id/Serum-Wajah-i.123456.7890123"
LAZADA = "https://www.lazada.co.id/products/tas-ransel-i160040927-s181150927.html"


class Clock:
    """A clock the test moves by hand (monotonic seconds, like time.monotonic)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


HTTP: httpx.Client  # one client for many requests (building one costs more than a request)


@pytest.fixture(scope="module", autouse=True)
def _http_client() -> Iterator[None]:
    global HTTP
    with httpx.Client(timeout=5) as HTTP:
        yield


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[SandboxServer]:
    with SandboxServer(clock=clock) as running:
        yield running


def extract(server: SandboxServer, url: str = TOKOPEDIA, key: str = ZYTE_KEY) -> httpx.Response:
    return HTTP.post(server.zyte_url, auth=(key, ""), json={"url": url, "product": True})


def check(server: SandboxServer, username: str = "alice", key: str = TIKAPI_KEY) -> httpx.Response:
    url = f"{server.tikapi_url}/public/check"
    return HTTP.get(url, params={"username": username}, headers={"X-API-KEY": key})


def statuses(responses: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in responses]


# --------------------------------------------------------------------------- spec

POSITIVE = "must be a positive integer (requests per minute)"


def test_limits_parse_and_round_trip_through_spec():
    faults = Faults.parse(" 429=0.1, rpm=600 ,domain-rpm=lazada:100, domain-rpm = shopee : 200", seed=3)

    assert (faults.rates, faults.rpm, faults.domain_rpm) == (
        {"429": 0.1},
        600,
        {"lazada": 100, "shopee": 200},
    )
    assert faults.spec() == "429=0.1,rpm=600,domain-rpm=shopee:200,domain-rpm=lazada:100"
    assert Faults.parse(faults.spec(), seed=3) == faults
    assert hash(Faults.parse(faults.spec(), seed=3)) == hash(faults)
    assert Faults.parse("rpm=5").spec() == "rpm=5"
    assert Faults.parse("domain-rpm=tokopedia:1").spec() == "domain-rpm=tokopedia:1"
    assert Faults.parse("").rpm is None and Faults.parse("").domain_rpm == {}


def test_limits_take_part_in_equality_and_hash():
    plain, limited = Faults.parse("500=0.5"), Faults.parse("500=0.5,rpm=10")

    assert plain != limited
    assert Faults.parse("rpm=10") != Faults.parse("rpm=11")
    assert Faults.parse("domain-rpm=shopee:2") != Faults.parse("domain-rpm=lazada:2")
    assert len({plain, limited, Faults.parse("rpm=10,500=0.5")}) == 2


def test_direct_construction_keeps_working_and_checks_the_limits():
    assert Faults({"500": 0.5}, latency_ms=10, seed=2, slow_ms=5).rpm is None
    assert Faults({}, rpm=5, domain_rpm={"shopee": 2}) == Faults.parse("rpm=5,domain-rpm=shopee:2")
    limits = {"shopee": 2}
    faults = Faults({}, domain_rpm=limits)
    limits["shopee"] = 99
    assert faults.domain_rpm == {"shopee": 2}
    with pytest.raises(ValueError, match=re.escape(f"rpm {POSITIVE}, got 0")):
        Faults({}, rpm=0)
    with pytest.raises(ValueError, match=re.escape("domain-rpm: unknown platform 'amazon'")):
        Faults({}, domain_rpm={"amazon": 5})
    with pytest.raises(
        ValueError, match=re.escape("domain-rpm for shopee must be a positive integer, got 0")
    ):
        Faults({}, domain_rpm={"shopee": 0})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rpm=x", f"fault 'rpm=x': rpm {POSITIVE}, got 'x'"),
        ("rpm=0", f"fault 'rpm=0': rpm {POSITIVE}, got '0'"),
        ("rpm=-3", f"fault 'rpm=-3': rpm {POSITIVE}, got '-3'"),
        ("rpm=1.5", f"fault 'rpm=1.5': rpm {POSITIVE}, got '1.5'"),
        ("rpm=", f"fault 'rpm=': rpm {POSITIVE}, got ''"),
        ("rpm", f"fault 'rpm': rpm {POSITIVE}, got ''"),
        ("rpm=5,rpm=6", "fault 'rpm=6': rpm is given twice"),
        ("domain-rpm=shopee", "fault 'domain-rpm=shopee': expected domain-rpm=PLATFORM:N, e.g."
                              " domain-rpm=shopee:200"),
        ("domain-rpm=200", "fault 'domain-rpm=200': expected domain-rpm=PLATFORM:N"),
        (
            "domain-rpm=amazon:5",
            "fault 'domain-rpm=amazon:5': unknown platform 'amazon' (known: tokopedia, shopee, lazada)",
        ),
        ("domain-rpm=:5", "fault 'domain-rpm=:5': unknown platform ''"),
        ("domain-rpm=shopee:0", f"fault 'domain-rpm=shopee:0': domain-rpm for shopee {POSITIVE}, got '0'"),
        ("domain-rpm=shopee:x", f"fault 'domain-rpm=shopee:x': domain-rpm for shopee {POSITIVE}, got 'x'"),
        ("domain-rpm=shopee:", f"fault 'domain-rpm=shopee:': domain-rpm for shopee {POSITIVE}, got ''"),
        ("domain-rpm=shopee:1,domain-rpm=shopee:2",
         "fault 'domain-rpm=shopee:2': domain-rpm for shopee is given twice"),
        ("rpm5", "fault 'rpm5': expected KIND=RATE"),
        ("rpx=5", "unknown kind 'rpx' (known: 401, 403, 429, 500, 502, 503, 520, timeout, reset, slow;"
                  " limits: rpm=N, domain-rpm=PLATFORM:N)"),
    ],
)  # fmt: skip
def test_bad_limit_specs_say_what_is_wrong(spec: str, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        Faults.parse(spec)


# --------------------------------------------------------------------------- rpm


def test_zyte_key_over_rpm_gets_429_until_the_window_slides(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("rpm=5"))
    accepted = []
    for _ in range(5):
        accepted.append(extract(sandbox))
        clock.now += 10  # accepted at 1000, 1010, ..., 1040
    over = extract(sandbox)  # at 1050: five in the last 60 s
    clock.now = 1_059.999
    still_over = extract(sandbox)
    clock.now = 1_060.0  # the one at 1000 has left the window
    slid = extract(sandbox)
    full_again = extract(sandbox)
    clock.now = 1_070.0
    slid_again = extract(sandbox)

    assert statuses(accepted) == [200] * 5
    assert over.status_code == 429
    assert over.headers["content-type"] == "application/problem+json"
    body = over.json()
    assert (body["type"], body["status"]) == ("/limits/over-user-limit", 429)
    assert body["title"] and body["detail"]
    assert "retry-after" not in over.headers
    assert "request-id" in over.headers
    assert still_over.status_code == 429
    assert (slid.status_code, full_again.status_code, slid_again.status_code) == (200, 429, 200)
    assert slid.json()["product"]["url"] == TOKOPEDIA


def test_tikapi_key_over_rpm_gets_its_429(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("rpm=2"))
    answers = [check(sandbox, "alice"), check(sandbox, "bob"), check(sandbox, "carol")]
    zyte = extract(sandbox)  # the limit is per API: Zyte's window for its key is empty
    clock.now += LIMIT_WINDOW_S
    later = check(sandbox, "carol")

    assert statuses(answers) == [200, 200, 429]
    assert answers[2].json() == {"status": "error", "message": "Rate limit exceeded"}
    assert "retry-after" not in answers[2].headers
    assert zyte.status_code == 200
    assert later.status_code == 200


def test_each_key_has_its_own_window(sandbox: SandboxServer):
    sandbox.set_faults(Faults.parse("rpm=2"))
    first = [extract(sandbox) for _ in range(3)]
    other = [extract(sandbox, key="someoneelseskey") for _ in range(3)]
    tikapi_first = [check(sandbox) for _ in range(3)]
    tikapi_other = [check(sandbox, key="anotherkey") for _ in range(3)]

    assert statuses(first) == [200, 200, 429]
    assert statuses(other) == [401, 401, 429]  # let past the limit, then refused for the key
    assert statuses(tikapi_first) == [200, 200, 429]
    assert statuses(tikapi_other) == [403, 403, 429]


def test_concurrent_requests_get_exactly_rpm_accepted(sandbox: SandboxServer):
    sandbox.set_faults(Faults.parse("rpm=7"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: extract(sandbox).status_code, range(24)))

    assert sorted(answers) == [200] * 7 + [429] * 17


# --------------------------------------------------------------------------- domain-rpm


def test_domain_rpm_throttles_one_platform_across_keys(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("domain-rpm=shopee:2"))
    shopee = [extract(sandbox, SHOPEE) for _ in range(3)]
    other_key = extract(sandbox, SHOPEE, key="someoneelseskey")
    tokopedia = [extract(sandbox, TOKOPEDIA) for _ in range(3)]
    lazada = extract(sandbox, LAZADA)
    tikapi = check(sandbox)
    clock.now += LIMIT_WINDOW_S
    later = extract(sandbox, SHOPEE)

    assert statuses(shopee) == [200, 200, 429]
    body = shopee[2].json()
    assert (body["type"], body["status"]) == ("/limits/over-domain-limit", 429)
    assert body["title"] and body["detail"]
    assert shopee[2].headers["content-type"] == "application/problem+json"
    assert "retry-after" not in shopee[2].headers
    assert other_key.status_code == 429 and other_key.json()["type"] == "/limits/over-domain-limit"
    assert statuses(tokopedia) == [200, 200, 200]
    assert (lazada.status_code, tikapi.status_code, later.status_code) == (200, 200, 200)


def test_a_rejected_request_counts_against_neither_limit(sandbox: SandboxServer):
    sandbox.set_faults(Faults.parse("rpm=3,domain-rpm=shopee:1,domain-rpm=lazada:1"))
    answers = [
        extract(sandbox, SHOPEE),  # user 1, shopee 1
        extract(sandbox, SHOPEE),  # over shopee's limit: not counted for the key
        extract(sandbox, TOKOPEDIA),  # user 2
        extract(sandbox, TOKOPEDIA),  # user 3: would be over had the rejected one counted
        extract(sandbox, LAZADA),  # over the key's limit: not counted for lazada
        extract(sandbox, LAZADA, key="someoneelseskey"),  # lazada's window is still empty
    ]

    assert statuses(answers) == [200, 429, 200, 200, 429, 401]
    assert [r.json().get("type") for r in answers[1::3]] == [
        "/limits/over-domain-limit",
        "/limits/over-user-limit",
    ]


def test_rejections_do_not_extend_the_lockout(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("rpm=1"))
    first = check(sandbox)
    rejected = []
    for now in (1_010.0, 1_030.0, 1_059.0):
        clock.now = now
        rejected.append(check(sandbox))
    clock.now = 1_060.0

    assert first.status_code == 200
    assert statuses(rejected) == [429, 429, 429]
    assert check(sandbox).status_code == 200


# --------------------------------------------------------------------------- limits and faults


def test_set_faults_keeps_the_windows(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("rpm=3"))
    before = [extract(sandbox) for _ in range(3)]
    sandbox.set_faults(Faults.parse("rpm=3,500=0"))
    kept = extract(sandbox)
    sandbox.set_faults(Faults.parse("rpm=5"))  # a higher limit applies at once, to the same window
    raised = [extract(sandbox) for _ in range(3)]
    sandbox.set_faults(Faults.parse(""))
    unlimited = [extract(sandbox) for _ in range(3)]
    sandbox.set_faults(Faults.parse("rpm=8"))  # the unlimited requests were counted too
    counted = extract(sandbox)
    clock.now += LIMIT_WINDOW_S
    slid = extract(sandbox)

    assert statuses(before) == [200, 200, 200]
    assert kept.status_code == 429
    assert statuses(raised) == [200, 200, 429]
    assert statuses(unlimited) == [200, 200, 200]
    assert counted.status_code == 429
    assert slid.status_code == 200


def test_control_endpoint_sets_limits_and_keeps_the_windows(sandbox: SandboxServer):
    control = f"{sandbox.url}/_sandbox/faults"
    first = [check(sandbox) for _ in range(2)]

    changed = HTTP.post(control, json={"faults": "domain-rpm=shopee:7,rpm=2"})
    over = check(sandbox)
    rejected = HTTP.post(control, json={"faults": "rpm=zero"})

    assert statuses(first) == [200, 200]
    assert changed.status_code == 200
    assert changed.json()["faults"] == "rpm=2,domain-rpm=shopee:7"
    assert HTTP.get(control).json()["faults"] == "rpm=2,domain-rpm=shopee:7"
    assert over.status_code == 429
    assert rejected.status_code == 400 and "rpm=zero" in rejected.json()["error"]
    assert sandbox.faults == Faults.parse("rpm=2,domain-rpm=shopee:7")


def test_a_throttled_request_uses_no_fault_draw(clock: Clock):
    """The accepted requests see the fault sequence they would see without the limit."""
    faults = "500=0.5,429=0.2"
    with SandboxServer(faults=Faults.parse(faults, seed=5)) as plain:
        wanted = [check(plain, "alice").status_code for _ in range(12)]
    with SandboxServer(faults=Faults.parse(f"{faults},rpm=3", seed=5), clock=clock) as limited:
        seen: list[int] = []
        throttled = 0
        while len(seen) < 12:
            response = check(limited, "alice")
            if response.status_code == 429 and "retry-after" not in response.headers:  # a limit's 429
                assert response.json() == {"status": "error", "message": "Rate limit exceeded"}
                throttled += 1
                clock.now += LIMIT_WINDOW_S
            else:
                seen.append(response.status_code)
        stats = limited.stats

    assert {200, 500} <= set(wanted)
    assert seen == wanted
    assert throttled == 3  # 12 accepted, 3 per window: one rejection at the end of each of the first three
    assert stats["over-user-limit"] == throttled
    assert stats["requests"] == 12 + throttled
    assert limited.calls()[("GET", "/public/check", "alice")] == 12


def test_limits_come_before_injected_faults(sandbox: SandboxServer):
    sandbox.set_faults(Faults.parse("500=1.0,rpm=1"))
    answers = [extract(sandbox), extract(sandbox)]

    assert statuses(answers) == [500, 429]
    assert answers[1].json()["type"] == "/limits/over-user-limit"
    assert sandbox.stats == {"requests": 2, "500": 1, "over-user-limit": 1}


# --------------------------------------------------------------------------- call log


def test_call_log_records_statuses_scopes_and_platforms(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("rpm=2,domain-rpm=shopee:1"))
    extract(sandbox, SHOPEE)
    clock.now += 1
    extract(sandbox, SHOPEE)
    clock.now += 1
    check(sandbox, "ghost_user")
    extract(sandbox, "https://www.amazon.com/dp/B000000")
    extract(sandbox, TOKOPEDIA)
    check(sandbox, "alice")
    check(sandbox, "bob")
    sandbox.set_faults(Faults.parse("reset=1.0"))
    with pytest.raises(httpx.TransportError):
        extract(sandbox, key="freshkey")

    log = sandbox.call_log()

    assert [(c.api, c.status, c.throttled, c.platform) for c in log] == [
        ("zyte", 200, None, "shopee"),
        ("zyte", 429, "domain", "shopee"),
        ("tikapi", 404, None, None),
        ("zyte", 451, None, None),
        ("zyte", 429, "user", "tokopedia"),
        ("tikapi", 200, None, None),
        ("tikapi", 429, "user", None),
        ("zyte", 0, None, "tokopedia"),  # reset: no answer was sent
    ]
    assert [c.clock_at for c in log] == [1_000.0, 1_001.0] + [1_002.0] * 6
    assert [c.target for c in log[:3]] == [SHOPEE, SHOPEE, "ghost_user"]
    assert (log[0].method, log[0].path, log[2].path) == ("POST", "/v1/extract", "/public/check")
    assert all(isinstance(c.at, float) and c.at > 1e9 for c in log)  # epoch seconds, as before
    peak = max_calls_in_window(log, api="zyte")
    assert peak == WindowPeak(most=3, accepted=3, rejected=2, throttled=2)


def test_call_log_keeps_arrival_order_when_answers_overtake(sandbox: SandboxServer):
    sandbox.hold_posts(0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        params: dict[str, str | int] = {"secUid": encode_sec_uid("alice"), "count": 30}
        url, headers = f"{sandbox.tikapi_url}/public/posts", {"X-API-KEY": TIKAPI_KEY}
        held = pool.submit(HTTP.get, url, params=params, headers=headers)
        deadline = time.monotonic() + 5
        while not sandbox.stats["requests"] and time.monotonic() < deadline:
            time.sleep(0.01)  # until the posts request has come (and is held)
        quick = check(sandbox, "alice")
        logged_while_held = [c.path for c in sandbox.call_log()]
        sandbox.release_posts()
        assert held.result().status_code == 200

    assert quick.status_code == 200
    assert logged_while_held == ["/public/check"]
    assert [c.path for c in sandbox.call_log()] == ["/public/posts", "/public/check"]


def test_a_hand_made_call_keeps_its_four_fields_and_defaults():
    call = Call(5.0, "GET", "/public/check", "alice")

    assert (call.at, call.method, call.path, call.target) == (5.0, "GET", "/public/check", "alice")
    assert (call.status, call.api, call.throttled, call.platform, call.clock_at) == (
        200,
        "tikapi",
        None,
        None,
        None,
    )
    assert Call(1.0, "POST", "/v1/extract", "u").api == "zyte"
    assert Call(1.0, "GET", "/elsewhere", "u").api is None


# --------------------------------------------------------------------------- max_calls_in_window


def zyte(
    at: float, status: int = 200, throttled: Scope | None = None, platform: str | None = "shopee"
) -> Call:
    return Call(at, "POST", "/v1/extract", "u", status, None, throttled, platform)


def test_max_calls_in_window_is_exact_on_a_hand_made_log():
    calls = [
        zyte(0.0),
        zyte(10.0, platform="lazada"),
        zyte(30.0, 429, "user"),
        zyte(31.0, 429, "domain"),
        zyte(32.0, 429),  # an injected 429 fault: rejected, but by no limit
        zyte(59.9),
        zyte(60.0),  # exactly one window after the first: not in its window
        zyte(61.0),
        Call(50.0, "GET", "/public/check", "alice"),
        Call(51.0, "GET", "/public/posts", "x:"),
        zyte(200.0),
    ]
    random.Random(1).shuffle(calls)  # the order of the list does not matter

    assert max_calls_in_window(calls, api="zyte") == WindowPeak(most=4, accepted=6, rejected=3, throttled=2)
    assert max_calls_in_window(calls).most == 6  # [10, 70): 10, 50, 51, 59.9, 60, 61
    assert max_calls_in_window(calls, api="tikapi") == WindowPeak(2, 2, 0, 0)
    assert max_calls_in_window(calls, api="zyte", platform="shopee") == WindowPeak(3, 5, 3, 2)
    assert max_calls_in_window(calls, api="zyte", platform="lazada") == WindowPeak(1, 1, 0, 0)
    assert max_calls_in_window(calls, window_s=1.0, api="zyte") == WindowPeak(2, 6, 3, 2)  # 59.9 and 60
    assert max_calls_in_window([zyte(0.0), zyte(60.0)]).most == 1  # half-open, as the limits count
    assert max_calls_in_window([zyte(0.0), zyte(60.0)], window_s=60.0001).most == 2
    assert max_calls_in_window([]) == WindowPeak(0, 0, 0, 0)


def test_max_calls_in_window_measures_the_limits_clock_when_every_call_has_it():
    calls = [Call(at, "POST", "/v1/extract", "u", clock_at=clock_at)
             for at, clock_at in ((0.0, 100.0), (30.0, 101.0), (100.0, 102.0))]  # fmt: skip

    assert max_calls_in_window(calls).most == 3
    assert max_calls_in_window([*calls, Call(500.0, "POST", "/v1/extract", "u")]).most == 2  # by `at`


def test_max_calls_in_window_matches_a_brute_force_count():
    rng = random.Random(7)
    for _ in range(200):
        times = sorted(round(rng.uniform(0, 300), 1) for _ in range(rng.randint(0, 40)))
        calls = [zyte(t, status=rng.choice((200, 200, 429))) for t in times]
        accepted = [c.at for c in calls if c.status != 429]
        window = rng.choice((1.0, 10.0, 60.0))
        brute = max(
            (sum(1 for t in accepted if start <= t < start + window) for start in accepted), default=0
        )

        assert max_calls_in_window(calls, window_s=window).most == brute


def test_a_limited_run_never_goes_over_the_limit_in_the_log(sandbox: SandboxServer, clock: Clock):
    sandbox.set_faults(Faults.parse("rpm=4,domain-rpm=shopee:2"))
    for step, url in enumerate(itertools.islice(itertools.cycle((SHOPEE, TOKOPEDIA, SHOPEE, LAZADA)), 60)):
        clock.now = 1_000.0 + 3.7 * step
        extract(sandbox, url)

    log = sandbox.call_log()
    peak = max_calls_in_window(log, api="zyte")
    shopee = max_calls_in_window(log, api="zyte", platform="shopee")

    assert peak.most == 4 and shopee.most == 2
    assert peak.accepted + peak.rejected == 60
    assert peak.throttled == peak.rejected > 0
    assert shopee.throttled > 0
    assert sandbox.stats["over-user-limit"] + sandbox.stats["over-domain-limit"] == peak.throttled
