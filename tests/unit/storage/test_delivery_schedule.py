"""Delivery schedules: an interval since the last pass, or a daily window on the wall clock of a time zone,
across midnight and the clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from storage.delivery_schedule import Schedule


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_interval_is_due_when_it_has_gone_by() -> None:
    every = Schedule.parse("every 15m")
    assert every == Schedule.every(900)
    last = utc("2026-11-28T14:00:00")
    assert every.is_due(last, None)
    assert not every.is_due(last + timedelta(minutes=14, seconds=59), last)
    assert every.is_due(last + timedelta(minutes=15), last)
    assert Schedule.parse("every 3600") == Schedule.parse("every 1h") == Schedule.every(3600)
    assert Schedule.parse("EVERY 2d").interval_seconds == 172_800


def test_a_window_follows_budapest_time_through_the_clock_changes() -> None:
    night = Schedule.parse("daily 01:00-05:00")
    assert night.zone == "Europe/Budapest"
    # Winter (CET, UTC+1): 01:00 local is 00:00 UTC.
    assert not night.is_due(utc("2026-11-28T23:59:00"), None)
    assert night.is_due(utc("2026-11-29T00:00:00"), None)
    assert night.is_due(utc("2026-11-29T03:59:59"), None)
    assert not night.is_due(utc("2026-11-29T04:00:00"), None)
    # Summer (CEST, UTC+2): 01:00 local is 23:00 UTC the day before.
    assert night.is_due(utc("2026-07-14T23:00:00"), None)
    assert not night.is_due(utc("2026-07-15T03:00:00"), None)


def test_a_window_may_run_over_midnight_in_any_zone() -> None:
    late = Schedule.parse("daily 22:30-02:00 UTC")
    assert late == Schedule.daily(time(22, 30), time(2, 0), "UTC")
    assert late.is_due(utc("2026-11-28T23:10:00"), None)
    assert late.is_due(utc("2026-11-29T01:59:00"), None)
    assert not late.is_due(utc("2026-11-29T02:00:00"), None)
    assert not late.is_due(utc("2026-11-29T22:29:00"), None)


@pytest.mark.parametrize(
    "schedule",
    [Schedule.every(60), Schedule.daily(time(1, 0), time(5, 0)), Schedule.parse("daily 9:00-17:30 UTC")],
)
def test_json_round_trip(schedule: Schedule) -> None:
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert Schedule.parse(schedule.describe()) == schedule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hourly", "not a schedule"),
        ("every 0s", "1 s to 7 days"),
        ("every 8d", "1 s to 7 days"),
        ("daily 25:00-02:00", "not a time of day"),
        ("daily 02:00-02:00", "same time"),
        ("daily 01:00-05:00 Mars/Olympus_Mons", "not a time zone"),
    ],
)
def test_nonsense_is_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule.parse(text)


def test_the_clock_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Schedule.every(60).is_due(datetime(2026, 11, 28, 14, 0), None)
