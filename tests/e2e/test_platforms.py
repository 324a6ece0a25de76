"""Every platform/kind of the contract, end to end: upload -> records in the right partition,
off-domain and unsafe URLs rejected with a reason, duplicates (tracking parameters, trailing
slash, other URL forms) collapsed onto one item."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import manifest, records, rejects, run_csv
from trawl.local.session import LocalSession, local_session

PRODUCTS = {
    "tokopedia": (
        "url,ref\n"
        "https://www.tokopedia.com/shop-a/kopi-gayo-250g?extParam=x&utm_source=ig,1\n"
        "https://www.tokopedia.com/shop-a/kopi-gayo-250g/,1-dup\n"
        "https://m.tokopedia.com/shop-b/batik-shirt,2\n"
        "https://www.tokopedia.com/shop-b/notfound-old-item,3\n"
        "https://www.bukalapak.com/p/kopi,4\n"
        "http://169.254.169.254/latest/meta-data,5\n",
        {"ok": 2, "not_found": 1},
        [
            "host 'www.bukalapak.com' is not a Tokopedia domain",
            "host '169.254.169.254' is an internal address",
        ],
    ),
    "shopee": (
        "link;ref\n"
        "https://shopee.co.id/Sneakers-i.111.222?sp_atk=a&xptdk=b;1\n"
        "https://shopee.co.id/product/111/222;1-dup\n"
        "https://shopee.sg/Mouse-i.333.444;2\n"
        "file:///etc/passwd;3\n",
        {"ok": 2},
        ["URL scheme 'file' is not allowed"],
    ),
    "lazada": (
        "Product-URL\tref\n"
        "https://www.lazada.co.id/products/watch-i160040-s181.html?spm=a2o4j\t1\n"
        "https://www.lazada.co.id/products/watch-i160040-s181.html\t1-dup\n"
        "https://lazada.co.id.evil.example/products/x-i1-s1.html\t2\n",
        {"ok": 1},
        ["host 'lazada.co.id.evil.example' is not a Lazada domain"],
    ),
}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalSession]:
    # Two pages a message and a cap of 100 videos an account: the videos test crosses both.
    with local_session(worker_env={"MAX_PAGES_PER_MESSAGE": "2", "MAX_VIDEOS_PER_ACCOUNT": "100"}) as session:
        yield session


@pytest.mark.parametrize("platform", sorted(PRODUCTS))
def test_products_land_in_their_partition(local: LocalSession, tmp_path: Path, platform: str) -> None:
    text, statuses, reasons = PRODUCTS[platform]
    job_id = run_csv(local, tmp_path, f"{platform}.csv", text, platform, "product")
    m = manifest(local, job_id)
    assert m.status == "enqueued" and m.rows_read == m.enqueued + m.duplicates + m.rejected
    assert m.duplicates == 1

    out = records(local, job_id)
    got: dict[str, int] = {}
    for record in out.values():
        got[record["status"]] = got.get(record["status"], 0) + 1
        assert record["_key"].startswith(f"output/platform={platform}/kind=product/dt={m.job_date}/{job_id}-")
        if record["status"] == "ok":
            data = record["data"]
            assert data["price"].replace(".", "").isdigit()  # a decimal string, never a float
            assert data["canonical_url"].startswith("https://") and "?" not in data["canonical_url"]
            assert data["probability"] >= 0.5
    assert got == statuses
    assert [
        r["reason"][: len(reason)] for r, reason in zip(rejects(local, job_id), reasons, strict=True)
    ] == reasons


def test_videos_are_paged_through_continuation_messages(local: LocalSession, tmp_path: Path) -> None:
    text = "username\nvideos_95\nvideos_150\nvideos_0\nprivate_star\n"
    job_id = run_csv(local, tmp_path, "videos.csv", text, "tiktok", "videos")
    out = records(local, job_id)
    by_author: dict[str, int] = {}
    for record in out.values():
        if record["status"] == "ok":
            assert record["_key"].endswith(f"{job_id}-{record['data']['id']}.json")
            by_author[record["data"]["author"]] = by_author.get(record["data"]["author"], 0) + 1
    # 95 videos at 30 a page and 2 pages a message: 60 in the first message, 35 in a continuation.
    assert by_author == {"videos_95": 95, "videos_150": 100}
    assert out["private_star"]["status"] == "private"
    assert local.runtime.progress.continuations[job_id] >= 2
