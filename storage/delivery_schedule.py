"""When a delivery target takes new recordings: every N seconds, or during a daily time window.

A pure value, stored as the target's ``schedule`` JSON:

- ``{"interval_seconds": 900}``: a pass is due when ``interval`` has gone by since the last one;
- ``{"daily": {"start": "01:00", "end": "05:00", "zone": "Europe/Budapest"}}``: every pass while the wall clock
  in ``zone`` reads from ``start`` to before ``end`` (a window may run over midnight: ``22:00``-``04:00``).
  Tenants have no time zone of their own in the catalogue, so the window names it (default Budapest's).

Written by a person as ``every 15m`` / ``every 900s`` / ``every 1h`` or ``daily 01:00-05:00 [Zone/Name]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_ZONE", "Schedule"]

DEFAULT_ZONE = "Europe/Budapest"
_MIN_INTERVAL = 1
_MAX_INTERVAL = 7 * 24 * 3600
_EVERY = re.compile(r"^every\s+(\d+)\s*([smhd]?)$", re.IGNORECASE)
_DAILY = re.compile(r"^daily\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})(?:\s+(\S+))?$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """Exactly one of ``interval_seconds`` or the window (``window_start``, ``window_end``, ``zone``)."""

    interval_seconds: int | None = None
    window_start: time | None = None
    window_end: time | None = None
    zone: str = DEFAULT_ZONE

    def __post_init__(self) -> None:
        windowed = self.window_start is not None or self.window_end is not None
        if (self.interval_seconds is None) == (not windowed):
            raise ValueError("a schedule is an interval or a daily window, not both or neither")
        if self.interval_seconds is not None and not _MIN_INTERVAL <= self.interval_seconds <= _MAX_INTERVAL:
            raise ValueError(f"an interval is {_MIN_INTERVAL} s to 7 days")
        if windowed:
            if self.window_start is None or self.window_end is None:
                raise ValueError("a daily window needs a start and an end")
            if self.window_start == self.window_end:
                raise ValueError("a daily window cannot start and end at the same time")
            try:
                ZoneInfo(self.zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{self.zone!r} is not a time zone (e.g. Europe/Budapest)") from None

    @classmethod
    def every(cls, seconds: int) -> Schedule:
        return cls(interval_seconds=seconds)

    @classmethod
    def daily(cls, start: time, end: time, zone: str = DEFAULT_ZONE) -> Schedule:
        return cls(window_start=start, window_end=end, zone=zone)

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``every 15m`` (s, m, h, d; bare seconds) or ``daily 01:00-05:00 [Europe/Budapest]``."""
        stripped = text.strip()
        if match := _EVERY.match(stripped):
            return cls.every(int(match.group(1)) * _UNITS[match.group(2).lower()])
        if match := _DAILY.match(stripped):
            zone = match.group(3) or DEFAULT_ZONE
            return cls.daily(_clock_time(match.group(1)), _clock_time(match.group(2)), zone)
        raise ValueError(f"{text!r} is not a schedule: write 'every 15m' or 'daily 01:00-05:00'")

    def is_due(self, now: datetime, last_run: datetime | None) -> bool:
        """Whether a pass at ``now`` (timezone-aware) takes new recordings, the previous one at ``last_run``."""
        if now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if self.interval_seconds is not None:
            return last_run is None or now - last_run >= timedelta(seconds=self.interval_seconds)
        assert self.window_start is not None and self.window_end is not None
        local = now.astimezone(ZoneInfo(self.zone)).time().replace(tzinfo=None)
        if self.window_start < self.window_end:
            return self.window_start <= local < self.window_end
        return local >= self.window_start or local < self.window_end  # over midnight

    def describe(self) -> str:
        if self.interval_seconds is not None:
            return f"every {self.interval_seconds}s"
        assert self.window_start is not None and self.window_end is not None
        return f"daily {self.window_start:%H:%M}-{self.window_end:%H:%M} {self.zone}"

    def to_json(self) -> dict[str, Any]:
        if self.interval_seconds is not None:
            return {"interval_seconds": self.interval_seconds}
        assert self.window_start is not None and self.window_end is not None
        return {
            "daily": {
                "start": f"{self.window_start:%H:%M}",
                "end": f"{self.window_end:%H:%M}",
                "zone": self.zone,
            }
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schedule:
        if "interval_seconds" in data:
            return cls.every(int(data["interval_seconds"]))
        window = data["daily"]
        return cls.daily(
            _clock_time(window["start"]), _clock_time(window["end"]), window.get("zone", DEFAULT_ZONE)
        )


def _clock_time(text: str) -> time:
    hours, _, minutes = text.partition(":")
    try:
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{text!r} is not a time of day (HH:MM)") from None
