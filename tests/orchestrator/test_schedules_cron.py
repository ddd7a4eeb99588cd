"""Cron parsing: field-named errors, cron's weekday numbering, and DST-correct fire times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.services.cron import CronError, parse_cron


def fire_times(expression: str, start: datetime, count: int,
               zone: str = "America/New_York") -> list[str]:
    schedule = parse_cron(expression, zone)
    moments, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        moments.append(moment.strftime("%Y-%m-%d %H:%M"))
    return moments


def test_daily_job_keeps_its_wall_clock_time_across_spring_forward() -> None:
    # 02:00 New York: EST (UTC-5) until 2026-03-08, EDT (UTC-4) after; 02:00 does not
    # exist on the 8th, so that run happens at the end of the gap (03:00 EDT = 07:00Z).
    assert fire_times("0 2 * * *", datetime(2026, 3, 6, 12, tzinfo=UTC), 4) == [
        "2026-03-07 07:00", "2026-03-08 07:00", "2026-03-09 06:00", "2026-03-10 06:00"]


def test_daily_job_runs_once_when_clocks_go_back() -> None:
    # 01:30 happens twice on 2026-11-01 (EDT then EST): it fires once.
    assert fire_times("30 1 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC), 3) == [
        "2026-11-01 05:30", "2026-11-02 06:30", "2026-11-03 06:30"]
    assert fire_times("0 2 * * *", datetime(2026, 10, 31, 12, tzinfo=UTC), 2) == [
        "2026-11-01 07:00", "2026-11-02 07:00"]


def test_hourly_job_runs_every_real_hour_when_clocks_go_back() -> None:
    assert fire_times("0 * * * *", datetime(2026, 11, 1, 3, 30, tzinfo=UTC), 5) == [
        "2026-11-01 04:00", "2026-11-01 05:00", "2026-11-01 06:00", "2026-11-01 07:00",
        "2026-11-01 08:00"]


def test_monday_after_the_change_is_not_skipped() -> None:
    # APScheduler 3's own DST arithmetic skips 2026-03-09 here.
    assert fire_times("0 0 * * mon", datetime(2026, 3, 1, tzinfo=UTC), 3) == [
        "2026-03-02 05:00", "2026-03-09 04:00", "2026-03-16 04:00"]


def test_weekdays_use_cron_numbering() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
    assert fire_times("0 12 * * 0", start, 1, "UTC") == ["2026-03-08 12:00"]  # Sunday
    assert fire_times("0 12 * * 7", start, 1, "UTC") == ["2026-03-08 12:00"]
    assert fire_times("0 12 * * 1-5", start, 3, "UTC") == [
        "2026-03-02 12:00", "2026-03-03 12:00", "2026-03-04 12:00"]


def test_day_of_month_or_day_of_week_as_cron_does() -> None:
    assert fire_times("0 0 13 * 5", datetime(2026, 3, 1, tzinfo=UTC), 3, "UTC") == [
        "2026-03-06 00:00", "2026-03-13 00:00", "2026-03-20 00:00"]


@pytest.mark.parametrize(("expression", "field", "fragment"), [
    ("61 * * * *", "cron_expression.minute", "61"),
    ("0 24 * * *", "cron_expression.hour", "24"),
    ("0 0 32 * *", "cron_expression.day_of_month", "32"),
    ("0 0 * 13 *", "cron_expression.month", "13"),
    ("0 0 * * 8", "cron_expression.day_of_week", "8"),
    ("0 0 * *", "cron_expression", "expected 5 fields"),
    ("every day", "cron_expression", "expected 5 fields"),
])
def test_invalid_expressions_name_the_field(expression: str, field: str, fragment: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("0 2 * * *", "Mars/Olympus")
    assert caught.value.field == "timezone"
