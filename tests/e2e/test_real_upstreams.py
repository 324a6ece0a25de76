"""`trawl run` against an upstream that is not the sandbox: a wire-compatible stand-in started
here, whose answers each test scripts (--tikapi-url / --zyte-url, the key from TIKAPI_KEY /
ZYTE_API_KEY, as a user with a real key runs it). Each test ends on what the user sees: the
summary, the records, the logs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.fakes import Answer, Request, ScriptedUpstream, html
from trawl.cli import app

runner = CliRunner()
KEY = "RealLookingTikApiKey0123456789"


pytestmark = pytest.mark.usefixtures("own_trawl_home")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "tikapi.key"
    path.write_text(KEY + "\n", encoding="utf-8")
    return path


def _run(tmp_path: Path, name: str, text: str, *args: str, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    ran = runner.invoke(
        app, ["run", str(path), "--json", "--verbose", "--data-dir", str(tmp_path / "data"), *args], env=env
    )
    assert ran.stdout.strip(), ran.output
    return ran.exit_code, json.loads(ran.stdout)


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (tmp_path / "data" / "output").rglob("*.json")]


def _profile(username: str, private: bool = False) -> dict[str, Any]:
    user = {
        "id": str(7_000_000 + len(username)),
        "uniqueId": username,
        "secUid": f"MS4wLjABAAAA-{username}",
        "nickname": username.title(),
        "verified": False,
        "privateAccount": private,
    }
    stats = {"followerCount": 120, "followingCount": 3, "heartCount": 4_000, "videoCount": 12}
    return {"status": "success", "message": "", "userInfo": {"user": user, "stats": stats}}


def test_a_wrong_base_path_is_a_configuration_problem_not_a_missing_account(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with ScriptedUpstream(lambda request: html(404)) as tikapi:
        code, summary = _run(
            tmp_path,
            "tiktok_accounts.csv",
            "username\nfirst_one\nsecond_one\nthird_one\n",
            "--tikapi-url",
            f"{tikapi.url}/wrong/base",
            env={"TIKAPI_KEY": KEY},
        )
    logs = capfd.readouterr().err

    assert code == 1
    assert (summary["enqueued"], summary["written_ok"], summary["written_permanent"]) == (3, 0, 0)
    assert summary["dead_lettered"] == 3
    # The summary says why: a configuration problem, on every delivery of every item.
    assert summary["failure_reasons"] == {"configuration": 3 * 5}
    assert not _records(tmp_path)  # nothing permanent was written for an endpoint that is wrong
    assert all(r.path.startswith("/wrong/base/public/check") for r in tikapi.requests)
    assert "a configuration problem" in logs and '"reason":"configuration"' in logs
    assert "not_found" not in logs and "not found" not in logs.lower()


def test_one_malformed_product_costs_its_fields_not_its_batch(tmp_path: Path) -> None:
    urls = [f"https://www.tokopedia.com/shop/item-{n}" for n in range(10)]

    def zyte(request: Request) -> Answer:
        url = request.json()["url"]
        product: dict[str, Any] = {
            "url": url,
            "name": url.rsplit("/", 1)[1],
            "price": "15000.00",
            "currency": "IDR",
            "brand": {"name": "Acme"},
            "aggregateRating": {"ratingValue": 4.5, "reviewCount": 17},
            "metadata": {"probability": 0.98},
        }
        if url.endswith("item-9"):  # what a real answer can hold: a count as text, a bare brand
            product |= {"brand": "Acme", "aggregateRating": {"ratingValue": 4.5, "reviewCount": "1.2k"}}
        return Answer(200, {"url": url, "statusCode": 200, "product": product})

    with ScriptedUpstream(zyte) as upstream:
        code, summary = _run(
            tmp_path,
            "tokopedia_products.csv",
            "url\n" + "\n".join(urls) + "\n",
            "--zyte-url",
            f"{upstream.url}/v1/extract",
            env={"ZYTE_API_KEY": "zyte-key-0123456789"},
        )

    assert code == 0, summary
    assert (summary["written_ok"], summary["dead_lettered"]) == (10, 0)
    assert len(upstream.requests) == 10  # no item was fetched (and paid for) twice
    records = {r["data"]["name"]: r for r in _records(tmp_path)}
    assert {r["status"] for r in records.values()} == {"ok"}
    malformed = records["item-9"]
    assert (malformed["data"]["brand"], malformed["data"]["review_count"]) == (None, None)
    assert malformed["data"]["price"] == "15000.00" and malformed["data"]["rating"] == 4.5
    assert "brand" in malformed["detail"] and "review_count" in malformed["detail"]
    assert all(r["data"]["review_count"] == 17 for name, r in records.items() if name != "item-9")


def test_a_403_on_a_private_accounts_posts_is_a_private_record(tmp_path: Path, key_file: Path) -> None:
    def tikapi(request: Request) -> Answer:
        if request.path == "/public/check":
            return Answer(200, _profile(request.query["username"]))
        return Answer(403, {"status": "error", "message": "This account is private"})

    with ScriptedUpstream(tikapi) as upstream:
        code, summary = _run(
            tmp_path,
            "tiktok_videos.csv",
            "username\nhidden_one\n",
            "--tikapi-url",
            upstream.url,
            "--tikapi-key-file",
            str(key_file),
            env={"TIKAPI_KEY": ""},
        )

    assert code == 0, summary
    assert (summary["written_permanent"], summary["dead_lettered"]) == (1, 0)
    [record] = _records(tmp_path)
    assert (record["item_key"], record["status"]) == ("hidden_one", "private")
    assert [r.path for r in upstream.requests] == ["/public/check", "/public/posts"]


def test_a_rejected_key_dead_letters_the_items_and_is_never_logged(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    refusal = Answer(401, {"status": "error", "message": "Invalid API key"})
    with ScriptedUpstream(lambda request: refusal) as tikapi:
        code, summary = _run(
            tmp_path,
            "tiktok_accounts.csv",
            "username\nkey_one\nkey_two\n",
            "--tikapi-url",
            tikapi.url,
            env={"TIKAPI_KEY": KEY},
        )
    out = capfd.readouterr()

    assert code == 1
    assert (summary["written_ok"], summary["written_permanent"], summary["dead_lettered"]) == (0, 0, 2)
    assert set(summary["failure_reasons"]) == {"bad_credentials"}
    assert not _records(tmp_path)
    assert {r.headers["x-api-key"] for r in tikapi.requests} == {KEY}  # it was sent...
    assert "rejected the API key" in out.err
    # ...and it is in no log line, no output and no file trawl wrote.
    everything = out.out + out.err + caplog.text + json.dumps(summary)
    everything += "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert KEY not in everything


def test_a_real_upstream_needs_its_key(tmp_path: Path) -> None:
    path = tmp_path / "tiktok_accounts.csv"
    path.write_text("username\nalice\n", encoding="utf-8")
    ran = runner.invoke(
        app, ["run", str(path), "--tikapi-url", "https://api.tikapi.io"], env={"TIKAPI_KEY": ""}
    )
    assert ran.exit_code == 2
    assert "needs its API key: set TIKAPI_KEY, or pass --tikapi-key-file" in _unboxed(ran.output)
    plain = runner.invoke(
        app, ["run", str(path), "--tikapi-url", "http://api.tikapi.io"], env={"TIKAPI_KEY": KEY}
    )
    assert plain.exit_code == 2 and "must be https" in _unboxed(plain.output)


def _unboxed(text: str) -> str:
    """An error as the user reads it, without the box typer draws around it."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
