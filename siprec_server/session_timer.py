"""Session timers (RFC 4028) from the UAS side: answer refreshes, refresh when we must, notice silence.

- The SRC asks for a timer with Session-Expires in an INVITE, re-INVITE or UPDATE; we answer per §9.
- When the SRC is the refresher and its refreshes stop (a crashed SRC, a lost BYE), we end the session slightly
  before it expires (§10), so a recording never stays open forever.
- When we are the refresher (the SRC asked for it, or does not support timers), we refresh with a body-less
  UPDATE at half the interval (§10).
Pure: header values in; header values and deadlines out.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_MIN_SE", "Refresher", "TimerAnswer", "answer_refresh", "bye_deadline", "refresh_deadline"]

DEFAULT_MIN_SE = 90  # RFC 4028 §4: at least 90 seconds


class Refresher(enum.StrEnum):
    UAC = "uac"  # the SRC refreshes; we watch
    UAS = "uas"  # we refresh


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerAnswer:
    status: int  # 200, or 422 Session Interval Too Small
    headers: tuple[tuple[str, str], ...]
    interval: int | None = None  # negotiated session interval in seconds; None = no session timer
    refresher: Refresher | None = None


def answer_refresh(
    session_expires: str | None,
    supported: Sequence[str],
    *,
    min_se: int = DEFAULT_MIN_SE,
    request_min_se: str | None = None,
) -> TimerAnswer:
    """The UAS's answer to a request carrying (or not) Session-Expires, per RFC 4028 §9."""
    if session_expires is None:
        return TimerAnswer(status=200, headers=())
    delta_text, _, params_text = session_expires.partition(";")
    try:
        delta = int(delta_text.strip())
    except ValueError:
        return TimerAnswer(status=200, headers=())  # unreadable: as if absent, rather than fail a recording
    uac_supports = "timer" in {tag.strip().lower() for tag in supported}
    floor = max(min_se, _seconds(request_min_se))
    if delta < floor:
        if uac_supports:
            return TimerAnswer(status=422, headers=(("Min-SE", str(floor)),))
        delta = floor  # §9 with erratum 1687: a UAC without timer support cannot retry; raise the interval
    requested = None
    for param in params_text.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "refresher" and value.strip().lower() in ("uac", "uas"):
            requested = Refresher(value.strip().lower())
    # §9: a UAC that does not support timers cannot refresh, so we do; otherwise its choice, default uac.
    refresher = (requested or Refresher.UAC) if uac_supports else Refresher.UAS
    headers: list[tuple[str, str]] = [("Session-Expires", f"{delta};refresher={refresher.value}")]
    if refresher is Refresher.UAC:
        headers.append(("Require", "timer"))
    return TimerAnswer(status=200, headers=tuple(headers), interval=delta, refresher=refresher)


def bye_deadline(refreshed_at: float, interval: int) -> float:
    """When to end an unrefreshed session: before expiry by min(32 s, interval / 3) (§10)."""
    return refreshed_at + interval - min(32.0, interval / 3)


def refresh_deadline(refreshed_at: float, interval: int) -> float:
    """When we, as refresher, send the next refresh: half the interval (§10)."""
    return refreshed_at + interval / 2


def _seconds(value: str | None) -> int:
    if value is None:
        return 0
    try:
        return int(value.split(";", 1)[0].strip())
    except ValueError:
        return 0
