"""Walking skeleton, end to end: a CSV of TikTok usernames uploaded to the embedded S3 becomes
one JSON record per distinct valid username, with rejects and a manifest that adds up."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import manifest, records, rejects, run_csv
from trawl.local.session import LocalSession

VALID = [f"user{n:02d}" for n in range(30)] + ["zach.king", "khaby_lame", "ghost_one", "private_club", "nasa"]
# Spellings of names above that must collapse onto them.
DUPLICATES = [
    "@user01",
    "USER02",
    " user03 ",
    "https://www.tiktok.com/@Zach.King?lang=en",
    "@@nasa",
    "user00",
    "Tiktok.com/@user10",
]
INVALID = {
    "bad name": "invalid username",
    "x": "invalid username",
    "averyveryverylongusername_over24": "at most 24",
    "https://evil.example.com/@user05": "not a TikTok domain",
    "javascript:alert(1)": "scheme 'javascript' is not allowed",
    "": "blank",
}


def _csv() -> tuple[str, int]:
    lines = ["Username,crm_id"]
    for n, name in enumerate(VALID):
        lines.append(f"{name},crm-{n}")
    lines += [f"{name},dup" for name in DUPLICATES]
    lines += [f"{name},bad" for name in INVALID]
    lines.append(",")  # a blank row
    lines.append("")  # and a blank line
    return "\r\n".join(lines) + "\r\n", len(lines) - 1


def test_fifty_usernames_become_one_record_each(local: LocalSession, tmp_path: Path) -> None:
    text, data_rows = _csv()
    assert data_rows == 50
    job_id = run_csv(local, tmp_path, "accounts-50.csv", text, "tiktok", "account")

    m = manifest(local, job_id)
    assert m.status == "enqueued", m.message
    assert m.rows_read == 50
    assert m.rows_read == m.enqueued + m.duplicates + m.rejected
    assert m.enqueued == len(VALID)
    assert m.duplicates == len(DUPLICATES)

    out = records(local, job_id)
    assert set(out) == {name.lower() for name in VALID}
    assert out["ghost_one"]["status"] == "not_found"
    assert out["private_club"]["status"] == "private"
    assert out["zach.king"]["status"] == "ok"
    assert out["zach.king"]["data"]["unique_id"] == "zach.king"
    assert out["user07"]["context"] == {"crm_id": "crm-7"}
    assert out["user07"]["source"]["row"] == 9  # header is row 1, user00 is row 2
    for record in out.values():
        assert record["_key"] == (
            f"output/platform=tiktok/kind=account/dt={m.job_date}/{job_id}-{record['item_key']}.json"
        )

    rows = rejects(local, job_id)
    assert len(rows) == m.rejected == len(INVALID) + 2
    reasons = {row["value"]: row["reason"] for row in rows}
    for value, reason in INVALID.items():
        assert reason in reasons[value], (value, reasons[value])
    assert [row["reason"] for row in rows[-2:]] == ["blank row", "blank row"]
    assert all(int(row["row"]) > 1 for row in rows)


def test_a_file_with_no_usable_column_fails_and_lists_the_headers(
    local: LocalSession, tmp_path: Path
) -> None:
    job_id = run_csv(local, tmp_path, "wrong.csv", "name,email\nalice,a@example.com\n", "tiktok", "account")
    m = manifest(local, job_id)
    assert m.status == "failed"
    assert m.message is not None
    assert "no usable column" in m.message and "'name', 'email'" in m.message
    assert m.enqueued == 0
    assert records(local, job_id) == {}


def test_the_same_upload_twice_is_one_job(local: LocalSession, tmp_path: Path) -> None:
    first = run_csv(local, tmp_path, "twice.csv", "username\nuser01\nuser02\n", "tiktok", "account")
    second = run_csv(local, tmp_path, "twice.csv", "username\nuser01\nuser02\n", "tiktok", "account")
    assert first == second
    assert manifest(local, first).invocations == 1
    assert set(records(local, first)) == {"user01", "user02"}
