"""The ledger's counts as read: summed over counter rows, with a stable order of reasons."""

from __future__ import annotations

from decimal import Decimal

from models.ledger import Counts, job_state


def test_counts_sum_counter_rows_and_skip_what_is_not_a_count() -> None:
    rows = [
        {"pk": "JOB#j", "sk": "JOB", "enqueued": Decimal(3), "producer": "enqueued"},
        {"pk": "JOB#j", "sk": "DELTA#1", "last": Decimal(7), "n_ok": Decimal(2), "r_throttled": Decimal(4)},
        {"pk": "JOB#j", "sk": "FOLD#0", "n_not_found": Decimal(1), "records": Decimal(3), "flag": True},
    ]

    counts = Counts.of(rows[1:])

    assert (counts.ok, counts.permanent, counts.records) == (2, 1, 3)
    assert counts.top_reasons() == [("throttled", 4)]
    assert job_state("enqueued", 3, counts) == "done"
    assert job_state("enqueued", 4, counts) == "running"


def test_reasons_most_first_and_ties_by_name() -> None:
    counts = Counts.of([{"r_private": 1, "r_not_found": 1, "r_timeout": 2, "r_unseen": 0}])

    assert counts.top_reasons() == [("timeout", 2), ("not_found", 1), ("private", 1)]
    assert counts.top_reasons(1) == [("timeout", 2)]
