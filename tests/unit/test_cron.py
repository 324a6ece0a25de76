"""EventBridge Scheduler expressions as the local stand-in evaluates them (trawl/stack/cron.py):
AWS's six-field cron with its 1-7 day-of-week, `?`, `L`, `W`, `#` and the year; rate(); at()."""

from __future__ import annotations

import datetime as dt

import pytest

from trawl.stack.cron import ExpressionError, parse

START = dt.datetime(2026, 12, 2, 5, 0, tzinfo=dt.UTC)  # a Wednesday


def _next(expression: str, timezone: str = "UTC", n: int = 2) -> list[str]:
    times = parse(expression, timezone).times_after(START)
    return [next(times).strftime("%Y-%m-%d %H:%M %a") for _ in range(n)]


@pytest.mark.parametrize(
    ("expression", "timezone", "expected"),
    [
        ("cron(0 6 * * ? *)", "UTC", ["2026-12-02 06:00 Wed", "2026-12-03 06:00 Thu"]),
        # 06:00 in Jakarta is 23:00 UTC the day before; at 05:00 UTC it is 12:00 there already.
        ("cron(0 6 * * ? *)", "Asia/Jakarta", ["2026-12-02 23:00 Wed", "2026-12-03 23:00 Thu"]),
        ("cron(0 6 ? * 2 *)", "UTC", ["2026-12-07 06:00 Mon", "2026-12-14 06:00 Mon"]),  # 2 = Monday
        ("cron(0 6 ? * 2-6 *)", "UTC", ["2026-12-02 06:00 Wed", "2026-12-03 06:00 Thu"]),
        ("cron(0 6 ? * MON-FRI *)", "UTC", ["2026-12-02 06:00 Wed", "2026-12-03 06:00 Thu"]),
        ("cron(0 6 ? * 6L *)", "UTC", ["2026-12-25 06:00 Fri", "2027-01-29 06:00 Fri"]),  # last Friday
        ("cron(0 6 ? * 3#2 *)", "UTC", ["2026-12-08 06:00 Tue", "2027-01-12 06:00 Tue"]),  # 2nd Tuesday
        ("cron(0 6 L * ? *)", "UTC", ["2026-12-31 06:00 Thu", "2027-01-31 06:00 Sun"]),
        (
            "cron(0 6 13W * ? *)",
            "UTC",
            ["2026-12-14 06:00 Mon", "2027-01-13 06:00 Wed"],
        ),  # 13 Dec is a Sunday
        ("cron(0 6 1 1 ? 2028)", "UTC", ["2028-01-01 06:00 Sat"]),
        ("cron(0/20 5 * * ? *)", "UTC", ["2026-12-02 05:20 Wed", "2026-12-02 05:40 Wed"]),
        ("rate(3 hours)", "UTC", ["2026-12-02 08:00 Wed", "2026-12-02 11:00 Wed"]),
        ("at(2026-12-24T08:00:00)", "Europe/Berlin", ["2026-12-24 07:00 Thu"]),
    ],
)
def test_expressions_fire_when_aws_would(expression: str, timezone: str, expected: list[str]) -> None:
    assert _next(expression, timezone, len(expected)) == expected


def test_a_schedule_past_its_last_firing_has_none() -> None:
    assert parse("at(2020-01-01T00:00:00)").next_after(START) is None
    assert parse("cron(0 6 1 1 ? 2020)").next_after(START) is None


@pytest.mark.parametrize(
    ("expression", "timezone", "said"),
    [
        ("cron(0 6 * * * *)", "UTC", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 6 ? * ? *)", "UTC", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 6 * * ?)", "UTC", "AWS cron has six fields"),
        ("cron(0 6 LW * ? *)", "UTC", "does not work locally (LW and L-n)"),
        ("cron(0 6 L-2 * ? *)", "UTC", "does not work locally (LW and L-n)"),
        ("cron(0 25 * * ? *)", "UTC", "not a valid cron expression"),
        ("daily", "UTC", "is not a schedule expression"),
        ("rate(0 minutes)", "UTC", "the rate must be at least 1"),
        ("cron(0 6 * * ? *)", "Mars/Olympus", "timezone 'Mars/Olympus' is not an IANA timezone name"),
    ],
)
def test_what_cannot_work_is_refused_with_what_is_wrong(expression: str, timezone: str, said: str) -> None:
    with pytest.raises(
        ExpressionError, match=said.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        parse(expression, timezone)
