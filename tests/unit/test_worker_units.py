"""Pure worker logic: backoff, settings, CSV records, product mapping. No sockets."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from pydantic import ValidationError

from models import AccountData, OutputRecord, Source
from workers.batch import backoff_seconds
from workers.output import output_key, to_csv
from workers.settings import WorkerSettings
from workers.upstream.zyte import product_data


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for receives in range(1, 12):
        delay = backoff_seconds(receives, None, base=10, cap=900)
        exponential = min(900, 10 * 2 ** (receives - 1))
        assert exponential // 2 <= delay <= exponential


def test_backoff_honours_retry_after() -> None:
    assert backoff_seconds(1, 60.0, base=10, cap=900) >= 60
    assert backoff_seconds(1, 5000.0, base=10, cap=900) == 5000  # the upstream's word wins over our cap
    assert backoff_seconds(1, 99_999.0, base=10, cap=900) == 43_200  # SQS's own maximum


@pytest.mark.parametrize("url", ["http://api.tikapi.io", "ftp://x", "http://10.0.0.5:8080"])
def test_upstream_urls_must_be_tls_except_loopback_in_a_local_run(url: str) -> None:
    env = {"PLATFORM": "tiktok", "DATA_BUCKET": "b", "QUEUE_URL": "q", "TIKAPI_BASE_URL": url}
    with pytest.raises(ValidationError, match="must be https"):
        WorkerSettings.from_env(env | {"ALLOW_LOOPBACK_HTTP": "true"})
    env["TIKAPI_BASE_URL"] = "http://127.0.0.1:9000"
    # Deployed (no ALLOW_LOOPBACK_HTTP, which only the local stand-in sets): TLS, even to loopback.
    with pytest.raises(ValidationError, match="for local runs only"):
        WorkerSettings.from_env(env)
    local = WorkerSettings.from_env(env | {"ALLOW_LOOPBACK_HTTP": "true"})
    assert local.tikapi_base_url == "http://127.0.0.1:9000"


def _record(nickname: str) -> OutputRecord:
    data = AccountData(
        id="1",
        unique_id="u",
        sec_uid="s",
        nickname=nickname,
        verified=False,
        private=False,
        followers=-1,
        following=0,
        likes=0,
        videos=0,
    )
    return OutputRecord(
        job_id="0123456789abcdef",
        platform="tiktok",
        kind="account",
        item_key="u",
        target="u",
        status="ok",
        fetched_at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        source=Source(bucket="b", key="k", row=2),
        context={"note": "@home"},
        data=data,
    )


def test_csv_record_escapes_formula_cells_but_not_numbers() -> None:
    [row] = list(csv.DictReader(io.StringIO(to_csv(_record('=HYPERLINK("http://x")')).decode())))
    assert row["data_nickname"] == '\'=HYPERLINK("http://x")'
    assert row["data_followers"] == "-1"  # a number, not a formula
    assert row["status"] == "ok" and row["source_row"] == "2"
    assert row["context"] == '{"note": "@home"}'


def test_output_key_depends_only_on_job_item_and_job_date() -> None:
    key = output_key(_record("a"), "2026-11-30", "json")
    assert key == "output/platform=tiktok/kind=account/dt=2026-11-30/0123456789abcdef-u.json"
    assert output_key(_record("b"), "2026-11-30", "json") == key


def test_product_prices_stay_decimal_strings() -> None:
    data = product_data(
        {"url": "u", "price": "10500.99", "regularPrice": 12000, "metadata": {"probability": 0.9}}
    ).data
    assert (data.price, data.regular_price) == ("10500.99", "12000")
    assert product_data({"url": "u", "price": 1e20}).data.price == "100000000000000000000"
    unpriced = product_data({"url": "u", "price": "Rp 10.000"})
    assert unpriced.data.price is None and unpriced.unparsed == ["price"]


def test_metrics_are_emitted_per_platform(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from workers.batch import _publish

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    _publish("shopee", "trawl", {"ok": 7, "permanent": 1, "retried": 2, "dead_lettered": 1})
    emf = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert emf["platform"] == "shopee"
    assert (emf["items_ok"], emf["items_permanent"], emf["items_retried"], emf["items_dead_lettered"]) == (
        [7.0],
        [1.0],
        [2.0],
        [1.0],
    )
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "trawl"


def test_records_are_put_without_waiting_for_100_continue() -> None:
    """botocore would send each PutObject with "Expect: 100-continue" and wait a round trip
    for the go-ahead; the record writer sends the body with the headers."""
    import boto3
    from moto import mock_aws

    from workers.output import RecordWriter

    sent: list[dict[str, str]] = []

    def capture(request: object, **_: object) -> None:
        sent.append(dict(request.headers))  # type: ignore[attr-defined]

    with mock_aws():
        plain = boto3.client("s3", region_name="us-east-1")
        plain.create_bucket(Bucket="records")
        writers = boto3.client("s3", region_name="us-east-1")
        for client in (plain, writers):
            client.meta.events.register_first("before-send.s3.PutObject", capture)
        plain.put_object(Bucket="records", Key="plain", Body=b"x")
        key = RecordWriter(writers, "records", "json").put(_record("a"), "2026-11-30")
        assert plain.get_object(Bucket="records", Key=key)["Body"].read().startswith(b'{"schema_version"')
    assert [headers.get("Expect") for headers in sent] == [b"100-continue", None]
