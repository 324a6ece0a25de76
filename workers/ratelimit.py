"""The rate an API key allows, shared by every worker that calls with it: one token bucket per
key in one row of the job ledger's table (pk RATE#<key>), read and written with a conditional
PutItem on its version.

Why a bucket in DynamoDB: the budget is the key's, not an invocation's. The three marketplace
workers share Zyte's key, and each runs up to MaximumConcurrency invocations in as many
execution environments, so only state they all read can keep the sum under the limit; and when
one marketplace has no work, the others take its share, which a static split per invocation
would leave idle. The table is already there and already reachable by every worker.

Why it holds to a 60-second window, bursts included: the bucket holds at most `capacity` tokens
and refills at `(limit - capacity) / 60` a second, so no 60 s window can see more than
`capacity + 60 * refill = limit` calls. A token is taken only for a call about to start (the
calls waiting right now take theirs in one request), never held for later, so calls are
counted when they start.

Why it adapts: the configured limit may be more than the key really gets. A 429 over the
key's limit (Zyte's `/limits/over-user-limit`, or any TikAPI 429) halves the key's rate for
every worker; one over a website's limit (`/limits/over-domain-limit`) gives that platform a
bucket of its own at half the rate, which its calls need as well as the key's, so the other
platforms keep their speed. Rates then grow back by a sixtieth of the limit a second
(additive increase, multiplicative decrease), and a platform's bucket goes when its rate is
whole again. Cuts come at most once a second, so one burst of 429s halves the rate once.

A request to DynamoDB per batch of calls, not per call: the calls waiting together take their
tokens together. When the table cannot be reached, calls wait and are retried (Retryable), never
made outside the budget."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from workers.upstream import DeadlineReached, Retryable

CAPACITY_S = 3.0  # the bucket holds this many seconds of the limit's rate: the largest burst
RECOVER_PER_S = 1 / 60  # a cut rate grows back by this share of the limit each second
MIN_FACTOR = 1 / 64  # the most the rate is cut to
CUT_GAP_S = 1.0  # 429s within this long of a cut are the same burst: no second cut
WRITE_TRIES = 10  # another worker wrote the row between our read and write: read again
EPSILON = 1e-9
MIN_WAIT_S = 0.001


@dataclass
class Bucket:
    tokens: float
    at: float  # when `tokens` was last brought up to date (epoch seconds)
    factor: float = 1.0  # the share of the rate allowed now, before recovery since `cut_at`
    cut_at: float = 0.0

    def factor_now(self, now: float) -> float:
        return min(1.0, self.factor + max(0.0, now - self.cut_at) * RECOVER_PER_S)

    def refill(self, now: float, rate: float, capacity: float) -> None:
        """Tokens earned since `at` at the rate allowed (recovering meanwhile: the mean of the
        factor at both ends, exact while it grows linearly)."""
        elapsed = max(0.0, now - self.at)
        factor = (self.factor_now(self.at) + self.factor_now(now)) / 2
        self.tokens = min(capacity, self.tokens + elapsed * rate * factor)
        self.at = max(self.at, now)

    def cut(self, now: float) -> bool:
        if now - self.cut_at < CUT_GAP_S:
            return False
        self.factor, self.cut_at = max(MIN_FACTOR, self.factor_now(now) / 2), now
        self.tokens = min(self.tokens, 0.0)  # the upstream says we are over: no burst now
        return True


@dataclass
class State:
    key: Bucket
    domains: dict[str, Bucket] = field(default_factory=dict)  # platform -> its own bucket

    def to_json(self) -> str:
        return json.dumps(
            {"key": asdict(self.key), "domains": {p: asdict(b) for p, b in self.domains.items()}}
        )

    @classmethod
    def from_json(cls, text: str) -> State:
        raw = json.loads(text)
        return cls(Bucket(**raw["key"]), {p: Bucket(**b) for p, b in raw.get("domains", {}).items()})


def limits(per_minute: int) -> tuple[float, float]:
    """(capacity, refill per second) such that capacity + 60 * refill = the limit."""
    capacity = max(1.0, per_minute * CAPACITY_S / 60)
    return capacity, max(per_minute - capacity, 1.0) / 60


class RateLimiter:
    """The calls of one worker environment to one API key, paced by the key's shared bucket."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        key: str,
        per_minute: int,
        platform: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._row = {"pk": {"S": f"RATE#{key}"}, "sk": {"S": "BUCKET"}}
        self.per_minute = per_minute
        self._capacity, self._rate = limits(per_minute)
        self._platform = platform
        self._clock = clock
        self._lock = asyncio.Lock()
        self._waiting: list[asyncio.Future[None]] = []  # calls waiting for a token, oldest first

    async def acquire(self, seconds_left: Callable[[], float]) -> None:
        """Wait for a token for one call about to start; DeadlineReached when the wait would
        outlast `seconds_left()`. Whoever holds the lock takes tokens for every call waiting."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(mine)
        try:
            while True:
                async with self._lock:
                    if mine.done():
                        return
                    granted, wait = await asyncio.to_thread(self.take, len(self._waiting))
                    for waiter in self._waiting[:granted]:
                        waiter.set_result(None)
                    del self._waiting[:granted]
                    if mine.done():
                        return
                if wait >= seconds_left():
                    raise DeadlineReached("the rate budget has no token within this invocation's time")
                await asyncio.sleep(wait)
        finally:
            if not mine.done():
                self._waiting.remove(mine)

    async def throttled(self, scope: str) -> None:
        """A 429: `scope` "user" cuts the key's rate, "domain" this platform's alone."""
        async with self._lock:
            await asyncio.to_thread(self._update, lambda state, now: self._cut(state, now, scope))

    def _cut(self, state: State, now: float, scope: str) -> float:
        if scope == "domain":
            bucket = state.domains.setdefault(self._platform, Bucket(tokens=0.0, at=now))
            bucket.refill(now, self._rate, self._capacity)
            bucket.cut(now)
        else:
            state.key.cut(now)
        return 0.0

    def take(self, wanted: int) -> tuple[int, float]:
        """Take up to `wanted` tokens: (how many, 0.0), or (0, the seconds until one is there)."""
        taken = [0]

        def take(state: State, now: float) -> float:
            taken[0], wait = self._take_from(state, now, wanted)
            return wait

        wait = self._update(take)
        return (taken[0], 0.0) if wait <= 0 else (0, wait)

    def _take_from(self, state: State, now: float, wanted: int) -> tuple[int, float]:
        buckets = [state.key]
        mine = state.domains.get(self._platform)
        if mine is not None:
            if mine.factor_now(now) >= 1.0:
                del state.domains[self._platform]  # whole again: the key's bucket is enough
            else:
                buckets.append(mine)
        for bucket in buckets:
            bucket.refill(now, self._rate, self._capacity)
        # A hair under a whole token is a whole one: waiting for the last 1e-9 of it would be a
        # wait too short to move a clock.
        whole = min(int(bucket.tokens + EPSILON) for bucket in buckets)
        if whole >= 1:
            taken = min(wanted, whole)
            for bucket in buckets:
                bucket.tokens -= taken
            return taken, 0.0
        short = [b for b in buckets if b.tokens + EPSILON < 1.0]
        wait = max((1.0 - b.tokens) / (self._rate * b.factor_now(now)) for b in short)
        return 0, max(wait, MIN_WAIT_S)

    def _update(self, change: Callable[[State, float], float]) -> float:
        """Read the row, apply `change`, write it back if nobody wrote it meanwhile. A wait
        (nothing taken) writes nothing."""
        try:
            for _ in range(WRITE_TRIES):
                found = self._db.get_item(TableName=self._table, Key=self._row, ConsistentRead=True)
                item = found.get("Item")
                now = self._clock()
                state = State.from_json(item["state"]["S"]) if item else State(Bucket(self._capacity, now))
                answer = change(state, now)
                if answer > 0:
                    return answer
                version = int(item["version"]["N"]) if item else 0
                condition: dict[str, Any] = (
                    {
                        "ConditionExpression": "version = :v",
                        "ExpressionAttributeValues": {":v": {"N": str(version)}},
                    }
                    if item
                    else {"ConditionExpression": "attribute_not_exists(pk)"}
                )
                row = self._row | {"state": {"S": state.to_json()}, "version": {"N": str(version + 1)}}
                try:
                    self._db.put_item(TableName=self._table, Item=row, **condition)
                    return 0.0
                except self._db.exceptions.ConditionalCheckFailedException:
                    continue
        except Retryable:
            raise
        except Exception as exc:
            message = f"the rate budget could not be read: {type(exc).__name__}"
            raise Retryable(message, reason="rate_budget") from exc
        return 0.05  # every try lost to another writer: let them go first, then try again
