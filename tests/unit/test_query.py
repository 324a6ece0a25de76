"""`trawl query` over a data dir written the way the workers write S3 (workers.output), and the
Athena tables in template.yaml checked against the same models as the DuckDB views."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from models import AccountData, OutputRecord, ProductData, Source, VideoData
from trawl.analysis.query import VIEWS, QueryError, View, record_columns, run_query
from trawl.cli import app
from trawl.local.template import load_template
from workers.output import output_key, to_csv

JOB = "0123456789abcdef"
DAY = "2026-11-30"
FETCHED = dt.datetime(2026, 11, 30, 3, 27, 47, 374252, tzinfo=dt.UTC)


def record(
    platform: str,
    kind: str,
    item_key: str,
    data: AccountData | VideoData | ProductData | None = None,
    status: str = "ok",
    context: dict[str, str] | None = None,
    detail: str | None = None,
) -> OutputRecord:
    return OutputRecord.model_validate(
        {
            "job_id": JOB,
            "platform": platform,
            "kind": kind,
            "item_key": item_key,
            "target": item_key,
            "status": status,
            "fetched_at": FETCHED,
            "source": Source(bucket="trawl-data", key=f"input/{platform}/{kind}/in.csv", row=2),
            "context": context or {},
            "data": data,
            "detail": detail,
        }
    )


def account(name: str, followers: int, nickname: str | None = None) -> AccountData:
    return AccountData(
        id=str(1000 + followers),
        unique_id=name,
        sec_uid=f"MS4w{name}",
        nickname=nickname or name.title(),
        verified=followers > 200,
        private=False,
        followers=followers,
        following=7,
        likes=followers * 10,
        videos=3,
    )


def product(name: str, price: str) -> ProductData:
    return ProductData(
        name=name,
        price=price,
        regular_price=None,
        currency="IDR",
        availability="InStock",
        sku="SKU-1",
        brand="Eiger",
        rating=4.5,
        review_count=12,
        canonical_url="https://www.tokopedia.com/shop/item",
        probability=0.98,
    )


def write(data_dir: Path, rec: OutputRecord, fmt: str = "json", day: str = DAY) -> Path:
    """Exactly the object RecordWriter would put in S3, at the key it would use."""
    path = data_dir / output_key(rec, day, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_csv(rec) if fmt == "csv" else (rec.model_dump_json() + "\n").encode())
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "trawl-data"
    write(root, record("tiktok", "account", "alice", account("alice", 300), context={"team": "a"}))
    write(root, record("tiktok", "account", "bob", account("bob", 100)), day="2026-12-01")
    write(root, record("tiktok", "account", "ghost", status="not_found", detail="HTTP 404 from upstream"))
    write(root, record("tiktok", "account", "carol", account("carol", 200, "=cmd|' /C calc'!A0")), "csv")
    video = VideoData(
        id="7423661903957817413",
        author="alice",
        description="unboxing",
        created_at=dt.datetime(2024, 10, 9, 6, 39, 39, tzinfo=dt.UTC),
        plays=870513,
        likes=104461,
        comments=3597,
        shares=1174,
    )
    write(root, record("tiktok", "videos", video.id, video))
    write(root, record("tokopedia", "product", "tp-1", product("[bold]Kopi[/bold] Gayo", "10500.99")))
    write(root, record("shopee", "product", "sp-1", product("Sneakers", "259000.00")), "csv")
    write(root, record("lazada", "product", "lz-1", status="not_found", detail="404"), "csv")
    return root


def rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    return run_query(data_dir, sql).rows


# --------------------------------------------------------------------------- the views


def test_each_view_holds_its_own_records(data_dir: Path) -> None:
    counts = {view.name: rows(data_dir, f"select count(*) from {view.name}")[0][0] for view in VIEWS}

    assert counts == {"tiktok_accounts": 4, "tiktok_videos": 1, "products": 3}


def test_partition_columns_come_from_the_path(data_dir: Path) -> None:
    found = rows(data_dir, "select platform, kind, dt, count(*) from products group by all order by all")
    days = rows(data_dir, "select item_key, dt from tiktok_accounts where dt > date '2026-11-30'")

    assert found == [
        ("lazada", "product", dt.date(2026, 11, 30), 1),
        ("shopee", "product", dt.date(2026, 11, 30), 1),
        ("tokopedia", "product", dt.date(2026, 11, 30), 1),
    ]
    assert days == [("bob", dt.date(2026, 12, 1))]


def test_data_fields_are_top_level_columns_next_to_the_envelope(data_dir: Path) -> None:
    found = rows(
        data_dir,
        "select unique_id, followers, data.followers, job_id, status, context['team'], source.row"
        " from tiktok_accounts where status = 'ok' order by followers desc",
    )

    assert found == [
        ("alice", 300, 300, JOB, "ok", "a", 2),
        ("carol", 200, 200, JOB, "ok", None, 2),
        ("bob", 100, 100, JOB, "ok", None, 2),
    ]


def test_status_records_are_rows_with_null_data(data_dir: Path) -> None:
    accounts = rows(
        data_dir, "select status, data, unique_id, detail from tiktok_accounts where data is null"
    )
    products = rows(data_dir, "select platform, status, data, name, price from products where data is null")

    assert accounts == [("not_found", None, None, "HTTP 404 from upstream")]
    assert products == [("lazada", "not_found", None, None, None)]  # a CSV status record


def test_csv_records_read_back_like_json_records(tmp_path: Path) -> None:
    rec = record("tiktok", "account", "eve", account("eve", 5, "@eve=1+1"), context={"note": "-2+3"})
    write(tmp_path / "as-json", rec, "json")
    write(tmp_path / "as-csv", rec, "csv")
    sql = "select * exclude (kind) from tiktok_accounts"

    from_json, from_csv = rows(tmp_path / "as-json", sql), rows(tmp_path / "as-csv", sql)

    assert from_csv == from_json
    assert from_csv[0][:6] == (1, JOB, "eve", "eve", "ok", FETCHED)
    nickname = rows(tmp_path / "as-csv", "select nickname, context from tiktok_accounts")
    assert nickname == [("@eve=1+1", {"note": "-2+3"})]  # the formula escaping is undone


def test_views_without_files_are_empty_with_the_models_columns(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    counts = [rows(tmp_path / "empty", f"select count(*) from {view.name}")[0][0] for view in VIEWS]
    columns = run_query(tmp_path / "empty", "select * from tiktok_videos").columns

    assert counts == [0, 0, 0]
    assert columns[:2] == ["schema_version", "job_id"]
    assert {*VideoData.model_fields, "data", "source", "context", "platform", "kind", "dt"} <= set(columns)
    assert columns[-3:] == ["platform", "kind", "dt"]


def test_missing_data_dir_says_which_and_what_fills_it(tmp_path: Path) -> None:
    with pytest.raises(QueryError) as error:
        run_query(tmp_path / "nowhere", "select 1")

    assert str(tmp_path / "nowhere") in str(error.value)
    assert "trawl run" in str(error.value) and "trawl demo" in str(error.value)


def test_sql_errors_are_duckdbs_message(data_dir: Path) -> None:
    with pytest.raises(QueryError, match=r"tiktok_account.*does not exist"):
        run_query(data_dir, "select * from tiktok_account")


# --------------------------------------------------------------------------- the command


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["query", *args])


def test_cli_json_is_a_list_of_objects_with_dates_and_decimals_as_strings(data_dir: Path) -> None:
    sql = (
        "select name, cast(price as decimal(18, 2)) as price, dt from products where status = 'ok' order by 1"
    )

    result = invoke(sql, "--data-dir", str(data_dir), "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"name": "Sneakers", "price": "259000.00", "dt": DAY},
        {"name": "[bold]Kopi[/bold] Gayo", "price": "10500.99", "dt": DAY},
    ]


def test_cli_csv_has_a_header_and_escapes_formulas(data_dir: Path) -> None:
    sql = "select unique_id, nickname, followers, verified from tiktok_accounts where likes > 0 order by 1"

    result = invoke(sql, "--data-dir", str(data_dir), "--format", "csv")

    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["unique_id", "nickname", "followers", "verified"],
        ["alice", "Alice", "300", "true"],
        ["bob", "Bob", "100", "false"],
        ["carol", "'=cmd|' /C calc'!A0", "200", "false"],
    ]


def test_cli_table_shows_values_literally(data_dir: Path) -> None:
    result = invoke("select name, status from products order by platform", "--data-dir", str(data_dir))

    assert result.exit_code == 0, result.output
    assert "[bold]Kopi[/bold] Gayo" in result.stdout  # scraped text is never read as rich markup
    assert "NULL" in result.stdout and "3 rows" in result.stdout


def test_cli_sql_error_exits_1_with_duckdbs_message_and_no_traceback(data_dir: Path) -> None:
    result = invoke("select nope from products", "--data-dir", str(data_dir))

    assert result.exit_code == 1
    assert 'Referenced column "nope" not found' in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_cli_missing_data_dir_exits_1(tmp_path: Path) -> None:
    result = invoke("select 1", "--data-dir", str(tmp_path / "nowhere"))

    assert result.exit_code == 1
    assert "trawl demo" in result.stderr


def test_cli_rejects_an_unknown_format(data_dir: Path) -> None:
    result = invoke("select 1", "--data-dir", str(data_dir), "--format", "xml")

    assert result.exit_code == 2
    assert "xml" in result.output


# --------------------------------------------------------------------------- Athena tables

HIVE_TYPES = {"VARCHAR": "string", "BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean"}
# Athena reads timestamps as the ISO-8601 text the records hold (from_iso8601_timestamp).
HIVE_TYPES["TIMESTAMPTZ"] = "string"


def glue_table(name: str) -> dict[str, Any]:
    for resource in load_template()["Resources"].values():
        if resource["Type"] == "AWS::Glue::Table" and resource["Properties"]["TableInput"]["Name"] == name:
            table: dict[str, Any] = resource["Properties"]["TableInput"]
            return table
    raise LookupError(f"template.yaml has no Glue table {name}")


def struct_fields(hive_type: str) -> list[tuple[str, str]]:
    inner = re.fullmatch(r"struct<(.*)>", hive_type)
    assert inner, hive_type
    return [(name, hive) for name, hive in (part.split(":", 1) for part in inner.group(1).split(","))]


def duck_struct_fields(sql_type: str) -> list[tuple[str, str]]:
    inner = re.fullmatch(r"STRUCT\((.*)\)", sql_type)
    assert inner, sql_type
    pairs = [part.strip().rsplit(" ", 1) for part in inner.group(1).split(",")]
    return [(name.strip('"'), HIVE_TYPES[t]) for name, t in pairs]


@pytest.mark.parametrize("view", VIEWS, ids=[v.name for v in VIEWS])
def test_athena_table_matches_the_view(view: View) -> None:
    table = glue_table(view.name)
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    partitions = [p["Name"] for p in table["PartitionKeys"]]
    params = table["Parameters"]
    location = params["storage.location.template"]["Fn::Sub"]

    assert set(columns) | set(partitions) == set(record_columns(view)) | {"platform", "kind", "dt"}
    assert struct_fields(columns["data"]) == duck_struct_fields(record_columns(view)["data"])
    serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde == "org.openx.data.jsonserde.JsonSerDe"
    assert params["projection.enabled"] == "true"
    assert params["projection.platform.values"].split(",") == view.platforms
    assert (params["projection.dt.type"], params["projection.dt.format"]) == ("date", "yyyy-MM-dd")
    assert location.endswith(f"/output/platform=${{!platform}}/kind={view.kind}/dt=${{!dt}}/")
