"""What the dashboard reads from a stack (issue 15): a job's minute-by-minute counts and its
records' field coverage on its summary (and in `trawl status --json`), and each platform's
queues. The local default runs the job end to end (producer, workers, ledger function on the
embedded AWS, the sandbox upstream); what is checked is what a user sees: the summary, the
records in S3, the CLI's output, and the number of AWS requests."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models import JobManifest, ObjectRef, ProductData
from producer.ledger import JobRows
from tests.helpers import count_requests, records, run_csv
from trawl.cli import app
from trawl.local.session import LocalSession, local_session, up_state
from trawl.stack.jobs import JobSummary, job_summary
from trawl.stack.queues import MAX_JOB_READS, queue_stats

runner = CliRunner()

# The sandbox leaves regularPrice out of an undiscounted product: 4 of these 5.
PRODUCTS = """url
https://www.tokopedia.com/gadgetstore/earbuds-tws
https://www.tokopedia.com/rumahbatik/kemeja-batik
https://www.tokopedia.com/tokokopi/kopi-arabika
https://www.tokopedia.com/tokokopi/gula-aren
https://www.tokopedia.com/gadgetstore/powerbank-10000
https://www.tokopedia.com/tokokopi/notfound-kopi
"""


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSession]:
    """The local default, found by the CLI as a running `trawl up`'s."""
    home = tmp_path_factory.mktemp("trawl-home")
    with local_session() as session, pytest.MonkeyPatch.context() as env:
        (home / "up.json").write_text(json.dumps(up_state(session).__dict__), encoding="utf-8")
        env.setenv("TRAWL_HOME", str(home))
        yield session


def _summary(local: LocalSession, job_id: str) -> JobSummary:
    found = job_summary(local.stack, job_id)
    assert found is not None
    return found


def test_a_jobs_minutes_sum_to_its_ended_items_and_its_coverage_is_its_records(
    local: LocalSession, tmp_path: Path
) -> None:
    started = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    job_id = run_csv(local, tmp_path, "coverage.csv", PRODUCTS, "tokopedia", "product")
    with count_requests() as made:
        s = _summary(local, job_id)

    assert made == ["s3.GetObject", "dynamodb.Query"]  # as before: no request of their own
    assert (s.state, s.written_ok, s.written_permanent) == ("done", 5, 1)
    assert sum(m.ended for m in s.timeline) == s.enqueued == 6
    assert sum(m.ok for m in s.timeline) == s.written_ok
    assert [m.at for m in s.timeline] == sorted({m.at for m in s.timeline})
    for minute in s.timeline:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", minute.at)
        at = dt.datetime.fromisoformat(minute.at)
        assert started <= at <= dt.datetime.now(dt.UTC) and minute.ended > 0
    # Coverage as Spidermon's: per data field, the share of the ok records in S3 with a value.
    ok = [r["data"] for r in records(local, job_id).values() if r["status"] == "ok"]
    assert len(ok) == 5
    assert s.coverage == {name: sum(d[name] is not None for d in ok) / 5 for name in ProductData.model_fields}
    assert s.coverage["regular_price"] == 0.2 and s.coverage["name"] == 1.0

    shown = runner.invoke(app, ["status", job_id, "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["timeline"] == [asdict(m) for m in s.timeline]
    assert payload["coverage"] == s.coverage
    human = runner.invoke(app, ["status", job_id]).stdout
    assert "field coverage: regular_price 20% · the other 10 fields 100%" in human


def test_queue_stats_reads_depths_and_the_oldest_job_in_flight_in_a_fixed_number_of_requests(
    local: LocalSession,
) -> None:
    # A lazada job whose producer enqueued 3 items five minutes ago, none of which a worker
    # has seen (no messages: the ledger alone says they are in flight).
    now = dt.datetime.now(dt.UTC)
    created = now - dt.timedelta(minutes=5)
    manifest = JobManifest(
        job_id="00000000000000f5",
        input=ObjectRef(bucket=local.stack.bucket, key="input/lazada/product/waiting.csv", etag="e"),
        platform="lazada",
        kind="product",
        job_date=created.date(),
        created_at=created,
        updated_at=created,
        status="enqueued",
        rows_read=3,
        enqueued=3,
    )
    JobRows(local.stack.endpoint.client("dynamodb"), local.stack.ledger_table).write(manifest)
    sqs = local.stack.endpoint.client("sqs")
    sqs.send_message(QueueUrl=local.stack.dlq_url("shopee"), MessageBody="{}")
    try:
        with count_requests() as made:
            stats = {q.platform: q for q in queue_stats(local.stack, now)}
    finally:
        sqs.purge_queue(QueueUrl=local.stack.dlq_url("shopee"))

    assert list(stats) == local.stack.platforms
    assert stats["lazada"].oldest_age_s == pytest.approx(300, abs=1)
    assert stats["tokopedia"].oldest_age_s is None  # its job (the test above) is done
    assert (stats["shopee"].dead_letters, stats["shopee"].oldest_age_s) == (1, None)
    assert all((q.visible, q.in_flight) == (0, 0) for q in stats.values())
    assert made.count("sqs.GetQueueAttributes") == 2 * len(stats)
    assert 2 <= made.count("dynamodb.Query") <= 1 + MAX_JOB_READS
    assert len(made) == made.count("sqs.GetQueueAttributes") + made.count("dynamodb.Query"), made
