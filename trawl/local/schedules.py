"""The local stand-in for EventBridge rules that run a function on a schedule (the ledger's
reconcile pass): each rule of the stack whose target is one of its functions fires at its
rate, scaled down locally, with the event EventBridge sends (`Scheduled Event`, its `time`)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trawl.local.environment import ContainerDied, Environment
from trawl.local.events import scheduled_event
from trawl.stack.describe import FunctionInfo, Stack

log = logging.getLogger(__name__)

# Locally a rate of 10 minutes fires every 10 seconds.
LOCAL_SCALE = 1 / 60
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86_400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between firings of a `rate(...)` expression; None for other forms."""
    found = _RATE.match(expression.strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_S[found.group(2).rstrip("s")]


@dataclass(frozen=True)
class Rule:
    name: str
    arn: str
    every_s: float
    function: FunctionInfo


def scheduled_rules(stack: Stack) -> list[Rule]:
    events = stack.endpoint.client("events")
    by_arn = {
        f"arn:aws:lambda:{stack.endpoint.region}:123456789012:function:{f.name}": f
        for f in stack.functions.values()
    }
    found = []
    for rule in events.list_rules().get("Rules", []):
        expression = rule.get("ScheduleExpression")
        if not expression:
            continue
        every = rate_seconds(expression)
        for target in events.list_targets_by_rule(Rule=rule["Name"]).get("Targets", []):
            function = by_arn.get(target["Arn"])
            if function is None:
                continue
            if every is None:
                log.warning("rule %s: %s is not run locally (only rate(...) is)", rule["Name"], expression)
                continue
            found.append(Rule(rule["Name"], rule["Arn"], every, function))
    return found


class RuleRunner:
    """Fires one rule at its (scaled) rate until `stop`; `fire` runs it at once."""

    def __init__(
        self,
        stack: Stack,
        rule: Rule,
        start: Callable[[FunctionInfo], Environment],
        stop: threading.Event,
        scale: float,
    ) -> None:
        self._stack = stack
        self.rule = rule
        self._start = start
        self._stop = stop
        self._scale = scale
        self._container: Environment | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            while not self._stop.wait(self.rule.every_s * self._scale):
                try:
                    self.fire()
                except Exception:
                    level = logging.DEBUG if self._stop.is_set() else logging.ERROR
                    log.log(level, "scheduled run of %s failed", self.rule.function.name, exc_info=True)
        finally:
            with self._lock:
                if self._container is not None:
                    self._container.close()

    def fire(self, at: dt.datetime | None = None) -> Any:
        """Invoke the rule's function now, as if the schedule were due at `at` (default now)."""
        event = scheduled_event(self.rule.arn, self._stack.endpoint.region, at or dt.datetime.now(dt.UTC))
        with self._lock:  # one invocation at a time, as one execution environment serves them
            for _ in range(2):
                if self._container is None or not self._container.alive:
                    self._container = self._start(self.rule.function)
                try:
                    return self._container.invoke(event)
                except ContainerDied:
                    self._container = None
            raise RuntimeError(f"{self.rule.function.name}: its environment died twice")
