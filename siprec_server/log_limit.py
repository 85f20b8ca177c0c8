"""Rate-limited logging for floods: a hostile peer must not turn the log into the attack's amplifier.

The first ``burst`` events in a window are logged as they come; the rest are only counted, and the count is
reported with the next event logged after the window has passed. Metrics still count every event.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LogLimiter"]


@dataclass(slots=True)
class LogLimiter:
    burst: int = 10
    window: float = 10.0
    _window_start: float = float("-inf")
    _logged: int = 0
    _suppressed: int = 0

    def admit(self, now: float) -> tuple[bool, int]:
        """Whether to log this event, and how many were suppressed since the last one logged."""
        if now - self._window_start >= self.window:
            self._window_start, self._logged = now, 0
        if self._logged < self.burst:
            self._logged += 1
            suppressed, self._suppressed = self._suppressed, 0
            return True, suppressed
        self._suppressed += 1
        return False, 0
