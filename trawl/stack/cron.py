"""EventBridge Scheduler's schedule expressions, evaluated locally: `rate(...)`, `cron(...)` and
`at(...)`, in the schedule's timezone, with croniter doing the calendar arithmetic.

AWS cron has six fields (minutes hours day-of-month month day-of-week year), one of the two day
fields must be `?`, and day-of-week counts 1-7 from Sunday. Locally these work: `* , - /` in every
field, `?`, `L` (last day of the month; `nL`, the last weekday n of the month), `nW` (the weekday
nearest day n) and `n#k` (the k-th weekday n), names (JAN-DEC, SUN-SAT) and the year field.
`LW` and `L-n` are refused at start (croniter has no equivalent), with what to write instead."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass

from croniter import CroniterBadDateError, croniter

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86_400}
_DOW_NUMBER = re.compile(r"(?<![#/\d])([1-7])(?!\d)")


class ExpressionError(ValueError):
    """A schedule expression AWS would refuse, or one the local stand-in cannot evaluate."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    timezone: str
    # rate(): seconds between firings; cron(): croniter's own expression; at(): the one time
    every_s: int | None = None
    cron: str | None = None
    at: dt.datetime | None = None

    def times_after(self, start: dt.datetime) -> Iterator[dt.datetime]:
        """The firings due after `start`, in UTC, in order (a rate counts from `start`)."""
        tz = zoneinfo.ZoneInfo(self.timezone)
        if self.every_s is not None:
            n = 1
            while True:
                yield (start + dt.timedelta(seconds=self.every_s * n)).astimezone(dt.UTC)
                n += 1
        elif self.at is not None:
            if self.at > start:
                yield self.at.astimezone(dt.UTC)
        else:
            times = croniter(self.cron, start.astimezone(tz))
            while True:
                try:
                    found = times.get_next(dt.datetime)
                except CroniterBadDateError:
                    return  # none within croniter's search: years ahead, or never (31 FEB)
                yield found.astimezone(dt.UTC)

    def next_after(self, start: dt.datetime) -> dt.datetime | None:
        return next(self.times_after(start), None)


def parse(expression: str, timezone: str = "UTC") -> Schedule:
    """The schedule, or ExpressionError saying what is wrong with it."""
    text = expression.strip()
    try:
        tz = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ExpressionError(f"timezone '{timezone}' is not an IANA timezone name") from exc
    if found := _RATE.match(text):
        value = int(found.group(1))
        if value < 1:
            raise ExpressionError(f"{text}: the rate must be at least 1")
        return Schedule(text, timezone, every_s=value * _UNIT_S[found.group(2).rstrip("s")])
    if found := _AT.match(text):
        at = dt.datetime.fromisoformat(found.group(1)).replace(tzinfo=tz)
        return Schedule(text, timezone, at=at)
    if found := _CRON.match(text):
        return Schedule(text, timezone, cron=_croniter_form(text, found.group(1)))
    raise ExpressionError(
        f"'{text}' is not a schedule expression: use rate(<n> minutes|hours|days), "
        "cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>) or at(yyyy-mm-ddThh:mm:ss)"
    )


def _croniter_form(text: str, body: str) -> str:
    fields = body.split()
    if len(fields) != 6:
        raise ExpressionError(
            f"{text}: AWS cron has six fields (minutes hours day-of-month month day-of-week year), "
            f"not {len(fields)}"
        )
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ExpressionError(f"{text}: exactly one of day-of-month and day-of-week must be '?'")
    for field, name in ((dom, "day-of-month"), (dow, "day-of-week")):
        if "LW" in field.upper() or re.search(r"L-\d", field.upper()):
            raise ExpressionError(
                f"{text}: '{field}' in {name} does not work locally (LW and L-n); "
                "write L for the month's last day, or nW for the weekday nearest day n"
            )
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else _standard_dow(dow.upper())
    # croniter's seven-field form: seconds (always 0) after day-of-week, then the year.
    form = f"{minutes} {hours} {dom} {month} {dow} 0 {year}"
    if not croniter.is_valid(form):
        raise ExpressionError(f"{text}: not a valid cron expression")
    return form


def _standard_dow(field: str) -> str:
    """AWS counts days 1-7 from Sunday; croniter 0-6. `nL` (last weekday n) is croniter's `Ln`,
    and a bare `L` is the week's last day, Saturday."""
    if field == "L":
        return "6"
    field = re.sub(r"^([1-7])L$", lambda m: f"L{int(m.group(1)) - 1}", field)
    if field.startswith("L"):
        return field
    return _DOW_NUMBER.sub(lambda m: str(int(m.group(1)) - 1), field)


def scheduled_time_text(at: dt.datetime) -> str:
    """<aws.scheduler.scheduled-time> as the scheduler writes it: UTC, seconds, 'Z'."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
