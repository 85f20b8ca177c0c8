"""When a failed delivery is tried again: exponential backoff with jitter, as a pure function.

The n-th failure waits ``base * 2**(n-1)``, capped at ``cap``; "equal jitter" then draws the wait uniformly from
the upper half of that, ``[delay / 2, delay]``. Targets that went down together (a file server restarting, a
network outage) so spread their retries instead of returning in one burst, while no retry comes sooner than
half the plain exponential step. The random draw is a parameter: the caller passes ``random.random()``, tests
pass fixed values.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["DEFAULT_BASE", "DEFAULT_CAP", "retry_delay"]

DEFAULT_BASE = timedelta(seconds=30)
DEFAULT_CAP = timedelta(hours=6)


def retry_delay(
    failures: int, jitter: float, *, base: timedelta = DEFAULT_BASE, cap: timedelta = DEFAULT_CAP
) -> timedelta:
    """The wait after the ``failures``-th failed attempt (1 for the first); ``jitter`` is in ``[0, 1)``."""
    if failures < 1:
        raise ValueError("a retry follows at least one failed attempt")
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter is a draw from [0, 1)")
    if base <= timedelta(0) or cap < base:
        raise ValueError("the base wait must be positive and the cap at least the base")
    # In float seconds: doubling a timedelta overflows long before a large count of failures is reached.
    step = min(cap.total_seconds(), base.total_seconds() * 2.0 ** min(failures - 1, 64))
    return timedelta(seconds=step / 2 + step / 2 * jitter)
