"""The local stand-ins for what runs a function on a schedule:
- EventBridge rules (the ledger's reconcile pass): each rule of the stack whose target is one of
  its functions fires at its rate, scaled down locally, with the event EventBridge sends
  (`Scheduled Event`, its `time`);
- EventBridge Scheduler schedules (the watch lists'): each fires at its real times, in its
  timezone, with its target's Input (trawl/stack/cron.py evaluates the expressions)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trawl.local.environment import ContainerDied, Environment
from trawl.local.events import function_arn, scheduled_event
from trawl.stack import cron
from trawl.stack.describe import FunctionInfo, Stack

log = logging.getLogger(__name__)

# Locally a rate of 10 minutes fires every 10 seconds.
LOCAL_SCALE = 1 / 60


def rate_seconds(expression: str) -> float | None:
    """Seconds between firings of a `rate(...)` expression; None for other forms."""
    try:
        return cron.parse(expression).every_s
    except cron.ExpressionError:
        return None


def _functions_by_arn(stack: Stack) -> dict[str, FunctionInfo]:
    return {function_arn(stack.endpoint.region, f.name): f for f in stack.functions.values()}


@dataclass(frozen=True)
class Rule:
    name: str
    arn: str
    every_s: float
    function: FunctionInfo


def scheduled_rules(stack: Stack) -> list[Rule]:
    events = stack.endpoint.client("events")
    by_arn = _functions_by_arn(stack)
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


# ---------------------------------------------------------------------- EventBridge Scheduler
# What the scheduler puts in its target's Input (its context attributes), as it fires.
_CONTEXT = (
    "<aws.scheduler.scheduled-time>",
    "<aws.scheduler.execution-id>",
    "<aws.scheduler.attempt-number>",
    "<aws.scheduler.schedule-arn>",
)


@dataclass(frozen=True)
class Scheduled:
    """One EventBridge Scheduler schedule of the stack whose target is one of its functions."""

    name: str
    arn: str
    schedule: cron.Schedule
    input: str
    function: FunctionInfo
    enabled: bool


def stack_schedules(stack: Stack) -> list[Scheduled]:
    """The stack's schedules, as recorded in the embedded scheduler at creation."""
    scheduler = stack.endpoint.client("scheduler")
    by_arn = _functions_by_arn(stack)
    found = []
    for summary in scheduler.list_schedules().get("Schedules", []):
        full = scheduler.get_schedule(Name=summary["Name"])
        function = by_arn.get(full["Target"]["Arn"])
        if function is None:
            continue
        schedule = cron.parse(full["ScheduleExpression"], full.get("ScheduleExpressionTimezone", "UTC"))
        found.append(
            Scheduled(
                name=full["Name"],
                arn=full["Arn"],
                schedule=schedule,
                input=full["Target"].get("Input", "{}"),
                function=function,
                enabled=full.get("State", "ENABLED") == "ENABLED",
            )
        )
    return found


def scheduler_event(scheduled: Scheduled, at: dt.datetime) -> dict[str, Any]:
    """The target's Input with the scheduler's context attributes filled in, as it sends it."""
    values = (cron.scheduled_time_text(at), str(uuid.uuid4()), "1", scheduled.arn)
    text = scheduled.input
    for placeholder, value in zip(_CONTEXT, values, strict=True):
        text = text.replace(placeholder, value)
    event: dict[str, Any] = json.loads(text)
    return event


class ScheduleRunner:
    """Fires one schedule at its real times (in its timezone) until `stop`, each firing an
    asynchronous invocation of its target, as the scheduler makes it. Locally a flexible time
    window fires at the start of the window. `fire` fires it now, or as if due at `at`."""

    def __init__(
        self,
        scheduled: Scheduled,
        deliver: Callable[[dict[str, Any]], str],
        stop: threading.Event,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.scheduled = scheduled
        self._deliver = deliver
        self._stop = stop
        self._clock = clock

    def next_firing(self) -> dt.datetime | None:
        return self.scheduled.schedule.next_after(self._clock()) if self.scheduled.enabled else None

    def run(self) -> None:
        due = self.next_firing()
        while due is not None and not self._stop.is_set():
            # Woken at least once a minute, so a clock that jumps (a laptop's sleep) is noticed.
            if self._stop.wait(min(60.0, max(0.0, (due - self._clock()).total_seconds()))):
                return
            if self._clock() < due:
                continue
            try:
                self.fire(due)
            except Exception:
                log.error("schedule %s: its firing failed", self.scheduled.name, exc_info=True)
            due = self.scheduled.schedule.next_after(due)

    def fire(self, at: dt.datetime | None = None) -> str:
        """The firing's request id (the target's asynchronous invocation)."""
        return self._deliver(scheduler_event(self.scheduled, at or self._clock()))
