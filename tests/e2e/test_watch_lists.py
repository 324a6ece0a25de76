"""Watch lists on a schedule and re-runs, end to end on the local default: the schedule's firings
(the clock moved by firing it as if due on given days) make one job per list per day, dated in
the schedule's timezone, through the normal producer; a re-run is a new job dated today."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models import ObjectRef
from producer.job import job_id_for
from producer.watch import firing_run
from trawl.analysis.query import run_query
from trawl.cli import app
from trawl.local.session import LocalSession, local_session, up_state
from trawl.stack import watch
from trawl.stack.jobs import load_manifest
from trawl.stack.submit import copy_to_data_dir, start_rerun, submit, wait_for_jobs

TZ = "Asia/Jakarta"  # UTC+7: 06:00 there is 23:00 UTC the day before
ACCOUNTS = [f"watched_{n:02d}" for n in range(30)]
FOLLOWER_GROWTH = """
select unique_id, dt, followers,
       followers - lag(followers) over (partition by unique_id order by dt) as growth
from tiktok_accounts
where status = 'ok'
qualify row_number() over (partition by unique_id, dt order by fetched_at desc) = 1
order by unique_id, dt
"""


runner = CliRunner()

# The module's stack is `trawl up`'s for the commands, found through this TRAWL_HOME.
pytestmark = pytest.mark.usefixtures("module_trawl_home")


@pytest.fixture(scope="module")
def session(home: Path) -> Iterator[LocalSession]:
    # The schedule's own next firing is decades away: the tests fire it, as if due on given days.
    parameters = {"WatchScheduleExpression": "at(2099-01-01T06:00:00)", "WatchScheduleTimezone": TZ}
    with local_session(parameters=parameters) as local:
        local.runtime.watch_uploads(interval_s=0.2)
        # Before the test's TRAWL_HOME is set (module_trawl_home): written where it will point.
        (home / "up.json").write_text(json.dumps(dataclasses.asdict(up_state(local))), encoding="utf-8")
        yield local


def _settle(session: LocalSession, timeout_s: float = 60) -> None:
    """Until the producer has nothing queued or running (a firing's dispatch and its jobs' starts)."""
    deadline = time.monotonic() + timeout_s
    while session.runtime.producer_calls.busy:
        assert time.monotonic() < deadline, "the producer never went idle"
        time.sleep(0.1)


def _fire(session: LocalSession, day: dt.date) -> None:
    at = dt.datetime.combine(day, dt.time(6, 0), tzinfo=dt.timezone(dt.timedelta(hours=7)))
    session.runtime.fire_schedule(at)
    _settle(session)


def _records_by_day(session: LocalSession, job_ids: set[str]) -> Counter[tuple[str, str]]:
    """(dt, item_key) -> how many objects the jobs wrote for it: a duplicate shows as 2."""
    s3 = session.stack.endpoint.client("s3")
    found: Counter[tuple[str, str]] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=session.stack.bucket, Prefix="output/"):
        for obj in page.get("Contents", []):
            *_, partition, name = obj["Key"].split("/")
            if name.split("-", 1)[0] in job_ids:
                body = s3.get_object(Bucket=session.stack.bucket, Key=obj["Key"])["Body"].read()
                found[(partition.removeprefix("dt="), _item_key(body))] += 1
    return found


def _item_key(body: bytes) -> str:
    return str(json.loads(body)["item_key"])


def test_three_days_of_a_watch_list_are_three_jobs_and_a_time_series(
    session: LocalSession, tmp_path: Path
) -> None:
    stack = session.stack
    path = tmp_path / "daily.csv"
    path.write_text("username\n" + "".join(f"{a}\n" for a in ACCOUNTS))
    wl, replaced = watch.add(stack, path, "tiktok", "account", "daily")
    assert not replaced
    days = [dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
    ref = ObjectRef(bucket=stack.bucket, key=wl.key, etag=wl.etag)
    job_ids = [job_id_for(ref, firing_run(day)) for day in days]

    _fire(session, days[0])
    _fire(session, days[1])
    wait_for_jobs(session, job_ids[:2], timeout_s=120)
    # Day two again: a duplicated delivery, and an edit of the list that same day.
    path.write_text("username\n" + "".join(f"{a}\n" for a in ACCOUNTS[:5]))
    watch.add(stack, path, "tiktok", "account", "daily")
    _fire(session, days[1])
    path.write_text("username\n" + "".join(f"{a}\n" for a in ACCOUNTS))
    watch.add(stack, path, "tiktok", "account", "daily")
    _fire(session, days[2])
    summaries = wait_for_jobs(session, job_ids, timeout_s=120)

    assert [s.state for s in summaries] == ["done"] * 3
    assert [s.written_ok for s in summaries] == [30, 30, 30]
    dates = [m.job_date.isoformat() for m in (load_manifest(stack, j) for j in job_ids) if m]
    assert dates == ["2026-03-01", "2026-03-02", "2026-03-03"]  # the Jakarta date, not UTC's
    runs = watch.runs(stack, "daily")
    assert sorted(r["job_id"] for r in runs) == sorted(job_ids), "a duplicated firing made another job"
    written = _records_by_day(session, set(job_ids))
    assert sorted({day for day, _ in written}) == dates
    assert {key for _, key in written} == set(ACCOUNTS)
    assert set(written.values()) == {1}, "an account has two records on one day"
    assert len(written) == 90

    data_dir = tmp_path / "data"
    copy_to_data_dir(stack, data_dir)
    # The README's follower-growth query: one point per account per day.
    series = run_query(data_dir, FOLLOWER_GROWTH)
    points = Counter(row[0] for row in series.rows)
    assert points == dict.fromkeys(ACCOUNTS, 3)
    assert {str(row[1]) for row in series.rows} == set(dates)
    assert all(row[3] is None for row in series.rows if str(row[1]) == dates[0])  # no day before
    assert all(row[3] == 0 for row in series.rows if str(row[1]) != dates[0])  # the sandbox's are steady

    (view,) = [v for v in watch.views(stack) if v.name == "daily"]
    assert (view.last_job_id, view.last_state, view.last_date) == (job_ids[2], "done", "2026-03-03")
    assert view.items == 30


def test_a_paused_list_is_skipped_and_run_now_again_forces_a_job(
    session: LocalSession, tmp_path: Path
) -> None:
    stack = session.stack
    path = tmp_path / "paused.csv"
    path.write_text("username\nsleepy_one\nsleepy_two\n")
    watch.add(stack, path, "tiktok", "account", "sleepy")
    watch.pause(stack, "sleepy")
    _fire(session, dt.date(2026, 4, 1))
    assert watch.runs(stack, "sleepy") == []
    (view,) = [v for v in watch.views(stack) if v.name == "sleepy"]
    assert view.paused and view.next_run is None

    watch.resume(stack, "sleepy")
    # As another process sees `trawl up`: its functions invoked through the stand-in's Invoke API.
    attached = dataclasses.replace(
        stack, endpoint=dataclasses.replace(stack.endpoint, lambda_url=session.runtime.invoke_server.url)
    )
    first = watch.run_now(attached, "sleepy")
    _settle(session)
    same = watch.run_now(attached, "sleepy")
    _settle(session)
    forced = watch.run_now(attached, "sleepy", again=True)
    _settle(session)
    ids = {first[0][1], same[0][1], forced[0][1]}
    assert first[0][1] == same[0][1] and len(ids) == 2
    wait_for_jobs(session, sorted(ids), timeout_s=60)
    assert sorted(r["job_id"] for r in watch.runs(stack, "sleepy")) == sorted(ids)


def test_a_rerun_is_a_new_job_dated_today_and_leaves_the_first_untouched(
    session: LocalSession, tmp_path: Path
) -> None:
    stack = session.stack
    path = tmp_path / "once.csv"
    path.write_text("username\nrerun_one\nrerun_two\nrerun_three\n")
    first = submit(session, path, "tiktok", "account")
    wait_for_jobs(session, [first], timeout_s=60)
    s3 = stack.endpoint.client("s3")
    before = {
        o["Key"]: o["ETag"]
        for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix="output/").get("Contents", [])
        if o["Key"].rsplit("/", 1)[1].startswith(first)
    }
    second = start_rerun(session, first)
    (summary,) = wait_for_jobs(session, [second], timeout_s=60)

    assert second != first and summary.state == "done" and summary.written_ok == 3
    again = load_manifest(stack, second)
    assert again is not None and again.rerun_of == first
    assert again.job_date == dt.datetime.now(dt.UTC).date()
    after = {
        o["Key"]: o["ETag"]
        for o in s3.list_objects_v2(Bucket=stack.bucket, Prefix="output/").get("Contents", [])
    }
    assert {k: after[k] for k in before} == before, "the first job's records changed"
    mine = [k for k in after if k.rsplit("/", 1)[1].startswith(second)]
    assert len(mine) == 3 and all(f"/dt={again.job_date}/" in k for k in mine)


def test_running_a_file_twice_says_it_was_processed_and_how_to_fetch_again(
    session: LocalSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a user types it, from the file's folder: the advice names the file as it was given.
    monkeypatch.chdir(tmp_path)
    path = Path("tiktok_twice.csv")
    path.write_text("username\ntwice_one\ntwice_two\n")
    data = ["--data-dir", str(tmp_path / "data")]
    first = runner.invoke(app, ["run", str(path), "--json", *data])
    assert first.exit_code == 0, first.output
    job_id = json.loads(first.stdout)["job_id"]

    second = runner.invoke(app, ["run", str(path), *data])
    assert second.exit_code == 0, second.output
    text = " ".join(second.output.split())
    assert (
        f"already processed: input/tiktok/account/tiktok_twice.csv (these very bytes) was job {job_id}"
        in text
    )
    assert "nothing new was fetched" in text
    assert f"trawl run {path} --again" in text and f"trawl rerun {job_id}" in text
    assert f"Earlier job {job_id} (from {dt.datetime.now(dt.UTC).date()}, not a new run):" in text
    assert f"job {job_id} tiktok/account input/tiktok/account/tiktok_twice.csv done" in text

    again = runner.invoke(app, ["run", str(path), "--again", "--json", *data])
    assert again.exit_code == 0, again.output
    fresh = json.loads(again.stdout)
    assert fresh["job_id"] != job_id and fresh["written_ok"] == 2
    assert "already processed" not in again.stderr

    rerun = runner.invoke(app, ["rerun", job_id, "--json", *data])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["job_id"] not in (job_id, fresh["job_id"])
    unknown = runner.invoke(app, ["rerun", "ffffffffffffffff", *data])
    assert unknown.exit_code == 2 and "no job ffffffffffffffff" in unknown.output


def test_watch_commands(session: LocalSession, tmp_path: Path) -> None:
    path = tmp_path / "shops.csv"
    path.write_text("url\nhttps://www.tokopedia.com/shop/watched-item\n")
    added = runner.invoke(app, ["watch", "add", str(path), "--platform", "tokopedia", "--kind", "product"])
    assert added.exit_code == 0 and "added watch list shops (tokopedia/product)" in added.stdout, added.output
    clash = runner.invoke(app, ["watch", "add", str(path), "--platform", "shopee", "--kind", "product"])
    assert clash.exit_code == 2 and "exists for tokopedia/product" in clash.output
    bad = tmp_path / "bad.csv"
    bad.write_text("colour\nred\n")
    refused = runner.invoke(app, ["watch", "add", str(bad), "--platform", "tokopedia", "--kind", "product"])
    assert refused.exit_code == 2 and str(bad) in " ".join(refused.output.split())

    fired = runner.invoke(app, ["watch", "run-now", "shops"])
    assert fired.exit_code == 0 and "fired shops (tokopedia/product): job" in fired.stdout, fired.output
    job_id = fired.stdout.split("job ")[1].split()[0]
    wait_for_jobs(session, [job_id], timeout_s=60)
    listed = runner.invoke(app, ["watch", "list", "--json"])
    (shops,) = [v for v in json.loads(listed.stdout) if v["name"] == "shops"]
    assert (shops["items"], shops["last_job_id"], shops["last_state"], shops["paused"]) == (
        1,
        job_id,
        "done",
        False,
    )
    assert shops["next_run"].startswith("2098-12-31T23:00")  # 06:00 in Jakarta, 1 January 2099

    assert runner.invoke(app, ["watch", "pause", "shops"]).exit_code == 0
    table = runner.invoke(app, ["watch", "list"]).stdout
    assert "shops" in table and "paused" in table
    assert runner.invoke(app, ["watch", "resume", "shops"]).exit_code == 0
    assert runner.invoke(app, ["watch", "remove", "shops"]).exit_code == 0
    gone = runner.invoke(app, ["watch", "pause", "shops"])
    assert gone.exit_code == 2 and "no watch list named 'shops'" in gone.output
