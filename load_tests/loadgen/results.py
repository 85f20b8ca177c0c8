"""What a generator process reports: one result per call it placed, and progress while it runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .profile import PTIME
from .rtp_legs import LegResult

__all__ = ["FAILED", "CallResult", "Progress", "TickStats"]

FAILED = "failed"  # answered, but the answer could not be used: hung up at once


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResult:
    """One call as the generator saw it. Times are monotonic seconds of the generator's host."""

    index: int
    call_id: str
    outcome: str  # a sip_uac.Outcome value, or FAILED
    status: int | None  # the final status that ended the INVITE or the BYE, when there was one
    reason: str
    caller_hz: int
    callee_hz: int
    invite_at: float
    answered_at: float | None
    bye_at: float | None
    ended_at: float | None
    legs: tuple[LegResult, ...]

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def setup_ms(self) -> float | None:
        return None if self.answered_at is None else (self.answered_at - self.invite_at) * 1000

    @property
    def media_span(self) -> float | None:
        """Seconds from the first RTP packet sent by either leg to the last one sent, plus its duration."""
        firsts = [leg.first_sent_at for leg in self.legs if leg.first_sent_at is not None]
        lasts = [leg.last_sent_at for leg in self.legs if leg.last_sent_at is not None]
        if not firsts or not lasts:
            return None
        return max(lasts) - min(firsts) + PTIME

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        data["legs"] = [leg.to_json() for leg in self.legs]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallResult:
        return cls(**{**data, "legs": tuple(LegResult.from_json(leg) for leg in data["legs"])})


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """A generator process's counters at one moment (monotonic ``at``)."""

    at: float
    started: int
    answered: int
    active: int  # answered and not ended
    ended: int
    rejected: int
    timeouts: int
    rtp_sent: int  # RTP datagrams sent so far, duplicates included
    rtcp_sent: int
    late_ms: float = 0.0  # the latest its 20 ms loop ran since the previous report

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Progress:
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class TickStats:
    """How punctual a generator process's 20 ms loop was: a late tick sends late (bunched) packets."""

    ticks: int
    late: int  # ticks that ran more than one packet time after they were due
    max_lateness: float  # seconds

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TickStats:
        return cls(**data)
