"""The job ledger's rows (a DynamoDB table): their keys, the outcome vocabulary, and the one
computation of a job's counts and state from them, shared by everything that reads or writes
the ledger (workers, producer, the ledger function, the CLI). Pure: no AWS calls.

- `JOB#<job_id>` / `JOB`: the job, as its producer last wrote it (the manifest's counts).
- `JOB#<job_id>` / `DELTA#<sequence>` and `FOLD#<delta>`: the job's counts, summed from its
  items' changes by the ledger function (ledger/counts.py): one delta row per run of changes,
  folded as they pile up. A job's counts are the sum of `counted_rows`: per outcome (`n_`),
  reason (`r_`) and permanent status (`s_`), records, deliveries and calls; per minute
  (`m<YYYYMMDDHHMM>_ended`, `_ok`, `_throttled`); and, over its ok items, per data field the
  records with a value (`f_<field>`) of `ok_records` (its field coverage).
- `ITEM#<job_id>#<item_key>` / `ITEM`: one item's current outcome. Each item has a partition of
  its own, so a hot job's writes spread over the table; the counts never live on an item row."""

from __future__ import annotations

import datetime as dt
import numbers
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

PERMANENT = ("not_found", "private", "unavailable", "invalid_target", "domain_refused", "not_a_product")
# What an item can be: pending (seen by a worker, not settled), ok, one of PERMANENT,
# dead_lettered (its last receive failed), stale (silent past its retry horizon).
OUTCOMES = ("pending", "ok", *PERMANENT, "dead_lettered", "stale")
SETTLED = ("ok", *PERMANENT)
# Outcomes that need nothing more from a worker: settled, dead-lettered or stale.
ENDED = (*SETTLED, "dead_lettered", "stale")
# Outcomes a new delivery may still change (a re-driven item goes from dead_lettered to pending).
OPEN = ("pending", "dead_lettered", "stale")
# Outcomes listed in the sparse index: the items a person has to look at.
NEEDS_A_PERSON = ("dead_lettered", "stale")
# Failure reasons counted per job: the workers' retryable reasons, each permanent status, and
# the two the reconcile pass finds (an item that left the queue unseen; a message that does not
# parse). A fixed vocabulary, so the job's counters stay a bounded set.
REASONS = (
    "throttled",
    "upstream_5xx",
    "timeout",
    "connection",
    "configuration",
    "bad_credentials",
    "unparseable",
    "deadline",
    "storage",
    "rate_budget",
    "unexpected",
    "unseen",
    "malformed_message",
    *PERMANENT,
)

JobState = Literal["running", "retrying", "done", "failed"]

# Per-minute counters: items that reached an end outcome in the minute, of them ok, and the
# upstream calls answered 429/503. Named `m<YYYYMMDDHHMM>_<what>` (UTC) in the counter rows.
MINUTE_COUNTS = ("ended", "ok", "throttled")
_MINUTE_COUNTER = re.compile(rf"m(\d{{12}})_({'|'.join(MINUTE_COUNTS)})")


def minute_of(stamp: str) -> str:
    """The UTC minute (YYYYMMDDHHMM) of an ISO-8601 time; one without an offset is UTC."""
    at = dt.datetime.fromisoformat(stamp)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).strftime("%Y%m%d%H%M")


def minute_counter(minute: str, what: str) -> str:
    return f"m{minute}_{what}"


def job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def watch_index_key(name: str) -> str:
    """The sparse `watch` index's partition for a watch list's jobs."""
    return f"WATCH#{name}"


def delta_key(job_id: str, first_sequence: str) -> dict[str, str]:
    """A delta row: one run of a job's changes, keyed by its first stream sequence number
    (zero-padded, so the rows sort in stream order)."""
    return {"pk": f"JOB#{job_id}", "sk": f"DELTA#{int(first_sequence):040d}"}


def fold_key(job_id: str, first_delta: str) -> dict[str, str]:
    """A fold row: the sums of a job's delta rows from `first_delta` (a delta row's sk) to its
    `last_delta`."""
    return {"pk": f"JOB#{job_id}", "sk": f"FOLD#{first_delta}"}


def counted_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of a job partition whose counts count: every fold, and every delta no fold
    covers (a fold's deltas may outlive it for a moment: they are deleted after it is written)."""
    rows = list(rows)
    folds = [r for r in rows if str(r.get("sk", "")).startswith("FOLD#")]
    covered = [(str(f["sk"])[len("FOLD#") :], str(f["last_delta"])) for f in folds]
    deltas = [
        r
        for r in rows
        if str(r.get("sk", "")).startswith("DELTA#")
        and not any(first <= str(r["sk"]) <= last for first, last in covered)
    ]
    return folds + deltas


def item_key(job_id: str, key: str) -> dict[str, str]:
    return {"pk": f"ITEM#{job_id}#{key}", "sk": "ITEM"}


def item_of(pk: str) -> tuple[str, str]:
    """(job_id, item_key) of an item row's partition key (neither holds a '#')."""
    _, job_id, key = pk.split("#", 2)
    return job_id, key


def open_index_key(job_id: str, outcome: str) -> str:
    """The sparse index's partition for a job's items that need a person: dead_lettered, stale."""
    return f"{job_id}#{outcome}"


@dataclass(frozen=True)
class Delivery:
    """One receive of one message: its id and receive count identify it, so writing it twice
    (a retried write) changes nothing the second time."""

    message_id: str
    receive_count: int

    @property
    def token(self) -> str:
        return f"{self.message_id}:{self.receive_count}"


@dataclass
class Counts:
    """A job's counts, summed over its counter rows. Items are counted once each by outcome;
    reasons count failures (a retried item's every failed delivery, a permanent item once)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # permanent items by status
    records: int = 0  # records written (video rows for tiktok/videos)
    deliveries: int = 0  # receives a worker recorded
    calls: int = 0  # upstream calls the workers made
    throttled_calls: int = 0  # of them, answered 429/503 (free, and waited out where time allowed)
    # "YYYYMMDDHHMM" (UTC) -> ended, ok, throttled in that minute (see MINUTE_COUNTS)
    minutes: dict[str, Counter[str]] = field(default_factory=dict)
    fields: Counter[str] = field(default_factory=Counter)  # of the ok records, those with the field
    ok_records: int = 0  # records written by ok items: the fields' denominator

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> Counts:
        found = cls()
        for row in rows:
            for name, value in row.items():
                # Numbers come back from DynamoDB as Decimal.
                if not isinstance(value, numbers.Number) or isinstance(value, bool) or name == "last":
                    continue
                number = int(value)  # type: ignore[call-overload]
                if name.startswith("n_"):
                    found.outcomes[name[2:]] += number
                elif name.startswith("r_"):
                    found.reasons[name[2:]] += number
                elif name.startswith("s_"):
                    found.statuses[name[2:]] += number
                elif name.startswith("f_"):
                    found.fields[name[2:]] += number
                elif name in ("records", "deliveries", "calls", "throttled_calls", "ok_records"):
                    setattr(found, name, getattr(found, name) + number)
                elif minute := _MINUTE_COUNTER.fullmatch(name):
                    found.minutes.setdefault(minute[1], Counter())[minute[2]] += number
        return found

    @property
    def ok(self) -> int:
        return self.outcomes["ok"]

    @property
    def permanent(self) -> int:
        return sum(self.outcomes[status] for status in PERMANENT)

    @property
    def dead_lettered(self) -> int:
        return self.outcomes["dead_lettered"]

    @property
    def stale(self) -> int:
        return self.outcomes["stale"]

    @property
    def ended(self) -> int:
        """Items that need nothing more from a worker: settled, dead-lettered or stale."""
        return sum(self.outcomes[outcome] for outcome in ENDED)

    def timeline(self) -> list[tuple[str, Counter[str]]]:
        """(minute, its counts) in time order; minutes whose counts are all 0 left out (an item
        dead-lettered in one and re-driven later is taken back from the first)."""
        return [(m, c) for m, c in sorted(self.minutes.items()) if any(c.values())]

    def coverage(self, names: Iterable[str] = ()) -> dict[str, float]:
        """Per data field (`names`, then any other the counters hold), the share of ok records
        with a value; {} while there is no ok record."""
        if self.ok_records <= 0:
            return {}
        every = dict.fromkeys([*names, *sorted(self.fields)])
        return {name: self.fields[name] / self.ok_records for name in every}

    def top_reasons(self, n: int = 5) -> list[tuple[str, int]]:
        """The n most frequent reasons, most first; ties by name, so the order never wobbles."""
        found = sorted(((r, c) for r, c in self.reasons.items() if c > 0), key=lambda rc: (-rc[1], rc[0]))
        return found[:n]


def job_state(producer: str, enqueued: int, counts: Counts) -> JobState:
    """The job's state from its producer's status and its counts: done when the producer has
    finished and every enqueued item is settled; failed when the producer failed for good, or
    items are dead-lettered or stale with nothing left in flight; retrying while Lambda retries
    a failed producer invocation; else running."""
    if producer == "failed":
        return "failed"
    if producer == "retrying":
        return "retrying"
    if producer != "enqueued" or counts.ended < enqueued:
        return "running"
    return "failed" if counts.dead_lettered or counts.stale else "done"


def expires_at(now: dt.datetime, ttl_days: int) -> int:
    """The TTL attribute's value: epoch seconds."""
    return int((now + dt.timedelta(days=ttl_days)).timestamp())
