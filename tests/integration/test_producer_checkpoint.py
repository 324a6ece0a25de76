"""A file larger than one invocation: the producer checkpoints (byte offset, row, counts, the
dedupe file) before its deadline and continues in a new invocation. Every continuation the
handler asks for is run here, in order, until the job is done; the test then proves that every
row was answered exactly once across the invocations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bench.common import LocalContext
from tests.helpers import rejects
from tests.integration.test_producer_inputs import ProducerDriver
from trawl.local.session import LocalSession


@pytest.fixture(scope="module")
def driver(local: LocalSession) -> Iterator[ProducerDriver]:
    local.runtime.stop()  # this module reads the work queue itself
    yield ProducerDriver(local)


class Continuations:
    """Stands in for the asynchronous self-invocation: keeps each payload to run later."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def continue_job(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)


class NearDeadline(LocalContext):
    """A Lambda context with plenty of time for the first `checks` deadline checks, then none."""

    def __init__(self, driver: ProducerDriver, checks: int) -> None:
        super().__init__(driver.function)
        self._left = checks

    def get_remaining_time_in_millis(self) -> int:
        self._left -= 1
        return 900_000 if self._left >= 0 else 1_000


def _plain_row(row: int) -> int:
    """The nearest row at or before `row` that holds a plain, valid username."""
    while row % 10 == 0 or row % 37 == 0:
        row -= 1
    return row


def _input(rows: int, newline: str = "\r\n") -> tuple[bytes, dict[int, str], dict[int, str], int]:
    """CSV text; row -> username expected on the queue; row -> reject reason; duplicates."""
    lines, enqueued, refused, duplicates, first_row = ["username,crm"], {}, {}, 0, {}
    for row in range(2, rows + 2):
        if row % 37 == 0:
            value, refused[row] = f"bad name {row}", f"invalid username 'bad name {row}'"
        elif row % 10 == 0:
            # An earlier row's name spelled differently: often from a previous invocation.
            value, duplicates = f"@USER{_plain_row(row // 3):04d}", duplicates + 1
        else:
            value = f"user{row:04d}"
        lines.append(f"{value},crm-{row}")
        if row not in refused and value.lstrip("@").lower() not in first_row:
            first_row[value.lstrip("@").lower()] = row
    for name, row in first_row.items():
        enqueued[row] = name
    # Every "@USERnnnn" must name a row that came before it, or it would not be a duplicate.
    assert duplicates == rows - len(enqueued) - len(refused)
    return (newline.join(lines) + newline).encode(), enqueued, refused, duplicates


@pytest.mark.parametrize(
    ("name", "rows", "checks", "cap", "invocations", "newline"),
    [
        # The deadline is checked every 100 rows; the second check finds it near: 200 rows each.
        ("deadline", 450, 1, "0", 3, "\r\n"),
        ("row-cap", 450, 1_000, "130", 4, "\r\n"),
        ("cap-at-last-row", 260, 1_000, "130", 3, "\r\n"),  # the last continuation finds no rows left
        ("old-mac-line-endings", 450, 1_000, "130", 4, "\r"),  # continuations keep reading CR lines
    ],
)
def test_a_checkpointed_job_enqueues_every_row_exactly_once(
    driver: ProducerDriver, name: str, rows: int, checks: int, cap: str, invocations: int, newline: str
) -> None:
    key = f"input/tiktok/account/checkpoint-{name}.csv"
    body, enqueued, refused, duplicates = _input(rows, newline)
    continuations = Continuations()
    result = driver.handle(
        driver.upload(key, body), NearDeadline(driver, checks), continuations, MAX_ROWS_PER_INVOCATION=cap
    )
    statuses = [job["status"] for job in result["jobs"]]
    while continuations.payloads:
        payload = continuations.payloads.pop(0)
        result = driver.handle(
            payload, NearDeadline(driver, checks), continuations, MAX_ROWS_PER_INVOCATION=cap
        )
        statuses += [job["status"] for job in result["jobs"]]

    assert statuses == ["running"] * (invocations - 1) + ["enqueued"]
    items = driver.drain("tiktok")
    assert sorted(i.source.row for i in items) == sorted(enqueued)  # no row sent twice, none skipped
    assert {i.source.row: i.item_key for i in items} == enqueued
    assert all(i.context == {"crm": f"crm-{i.source.row}"} for i in items)

    m = driver.manifest(key)
    assert (m.status, m.invocations, m.checkpoint) == ("enqueued", invocations, None)
    assert (m.rows_read, m.enqueued, m.duplicates, m.rejected) == (
        rows,
        len(enqueued),
        duplicates,
        len(refused),
    )
    assert m.rows_read == m.enqueued + m.duplicates + m.rejected
    found = [(int(r["row"]), r["reason"].split(":")[0]) for r in rejects(driver.local, m.job_id)]
    assert found == sorted(refused.items())  # each reject once, in file order
    leftovers = driver.s3.list_objects_v2(Bucket=driver.bucket, Prefix=f"jobs/{m.job_id}/checkpoint/")
    assert leftovers.get("KeyCount", 0) == 0


def test_a_continuation_for_a_finished_job_does_nothing(driver: ProducerDriver) -> None:
    key = "input/tiktok/account/checkpoint-stale.csv"
    event = driver.upload(key, b"username\nalice\n")
    driver.handle(event)
    etag = event["Records"][0]["s3"]["object"]["eTag"]
    stale = {"trawl_continuation": {"bucket": driver.bucket, "key": key, "etag": etag}}
    assert driver.handle(stale) == {"jobs": []}
    assert [i.target for i in driver.drain("tiktok")] == ["alice"]
    assert driver.manifest(key).invocations == 1
