"""DTMF key presses as value objects, whichever way they arrived (RFC 4733 telephone-event or in-band tones).

Receivers live in :mod:`media.telephone_event` (RFC 4733) and :mod:`media.dtmf_inband` (tones in decoded PCM).
Digits can be masked (e.g. a card number typed during a paused recording): the event keeps its timing and loses
its digit.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

__all__ = ["DIGITS", "DtmfEvent", "DtmfSource"]

#: Digits by RFC 4733 §3.2 event code: 0-9, then *, #, A-D (codes 10-15).
DIGITS = "0123456789*#ABCD"


class DtmfSource(enum.StrEnum):
    RFC4733 = "rfc4733"
    INBAND = "inband"


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfEvent:
    """One key press.

    ``start`` and ``duration`` are RTP clock ticks for RFC 4733 (``start`` is the event's RTP timestamp as sent,
    0 to 2**32 - 1) and samples for in-band tones (``start`` counts from the first sample fed). ``volume`` is
    the RFC 4733 power level in -dBm0 (0-63); ``None`` for in-band tones.
    """

    digit: str | None
    source: DtmfSource
    start: int
    duration: int
    volume: int | None = None

    def __post_init__(self) -> None:
        if self.digit is not None and (len(self.digit) != 1 or self.digit not in DIGITS):
            raise ValueError(f"not a DTMF digit: {self.digit!r}")
        if self.start < 0 or self.duration < 0:
            raise ValueError(f"negative start or duration: {self.start}, {self.duration}")
        if self.volume is not None and not 0 <= self.volume <= 63:
            raise ValueError(f"RFC 4733 volume is 0-63 (-dBm0), not {self.volume}")

    def masked(self) -> DtmfEvent:
        """The same press without its digit."""
        return dataclasses.replace(self, digit=None)
