"""The demo's sample files through the local stack, copied to a data dir, then `trawl query`:
what the views count is what the workers wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trawl.analysis.query import run_query
from trawl.cli import app
from trawl.cli.local import DEMO_FILES
from trawl.local.session import local_session
from trawl.resources import sample_path
from trawl.stack.submit import copy_to_data_dir, submit, wait_for_jobs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("query") / "trawl-data"
    with local_session() as session:
        jobs = [
            submit(session, sample_path(name), platform, kind)
            for (platform, kind), name in DEMO_FILES.items()
        ]
        wait_for_jobs(session, jobs, timeout_s=120)
        copy_to_data_dir(session.stack, target)
    yield target


def written(data_dir: Path, platform: str, kind: str) -> int:
    return len(list((data_dir / "output" / f"platform={platform}" / f"kind={kind}").glob("dt=*/*.json")))


def test_views_count_the_records_the_workers_wrote(data_dir: Path) -> None:
    accounts = written(data_dir, "tiktok", "account")
    products = {p: written(data_dir, p, "product") for p in ("tokopedia", "shopee", "lazada")}

    [(count,)] = run_query(data_dir, "select count(*) from tiktok_accounts").rows
    by_platform = dict(run_query(data_dir, "select platform, count(*) from products group by 1").rows)
    [(videos,)] = run_query(data_dir, "select count(*) from tiktok_videos").rows

    assert accounts > 0 and count == accounts
    assert by_platform == products
    assert videos == written(data_dir, "tiktok", "videos") > 0


def test_demo_sample_query_through_the_cli(data_dir: Path) -> None:
    accounts = written(data_dir, "tiktok", "account")
    as_json = ["--data-dir", str(data_dir), "--format", "json"]
    top_five = "select unique_id, followers from tiktok_accounts order by followers desc limit 5"

    counted = CliRunner().invoke(app, ["query", "select count(*) as n from tiktok_accounts", *as_json])
    top = CliRunner().invoke(app, ["query", top_five, *as_json])

    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout) == [{"n": accounts}]
    assert top.exit_code == 0, top.output
    followers = [row["followers"] for row in json.loads(top.stdout)]
    assert len(followers) == 5 and followers == sorted(followers, reverse=True)
