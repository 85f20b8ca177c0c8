"""Probation of a new RTP source before it may start or take over a stream (RFC 3550 §6.2.1, A.1; sans-I/O).

A source is valid once it has sent two packets in sequence (RFC 3550 A.1, ``MIN_SEQUENTIAL``); until then its
packets are held, not recorded. Here "in sequence" allows a few sequence numbers either way (loss and
reordering at the start), and a packet of the candidate's SSRC that fits none of its held packets is held as
well instead of replacing them (a forged packet between the first two real ones must not cost the real
ones). A source that would replace the current one must also find it quiet: nothing from the current SSRC for
:data:`QUIET` seconds of arrival time. So random datagrams that happen to parse as RTP never start or
interrupt a stream (their SSRC never repeats), another source sending at the same time as the real one never
takes over, and a real change of source (a transfer, media re-anchored at the SBC) loses nothing: its held
packets are recorded once it is proven.
"""

from __future__ import annotations

from media.rtp import RtpHeader

__all__ = ["MAX_CANDIDATES", "MAX_HELD", "QUIET", "SPAN", "Probation"]

SPAN = 16  # sequence numbers, either way, within which the next packet continues a candidate source
QUIET = 0.1  # seconds without the current source before another may take over
MAX_HELD = 64  # packets held for one candidate; older ones are given up
MAX_CANDIDATES = 8  # candidates followed at once (garbage between a real source's first packets is common)

Held = tuple[float, bytes, RtpHeader]


class Probation:
    """Holds the packets of a few candidate sources, by SSRC."""

    __slots__ = ("_candidates",)

    def __init__(self) -> None:
        self._candidates: dict[int, list[Held]] = {}

    @property
    def pending(self) -> int:
        """Packets held for all candidates."""
        return sum(len(held) for held in self._candidates.values())

    def offer(self, arrival: float, data: bytes, header: RtpHeader, current_seen: float | None) -> list[Held]:
        """Hold a packet of a source other than the current one; ``current_seen`` is the arrival of the
        current source's latest packet (``None`` without one). Returns the candidate's held packets that
        belong to its sequence, in arrival order, once it is proven (every candidate is dropped then), else
        ``[]``. Packets given up (outside the proven sequence, beyond :data:`MAX_HELD`, the oldest of too many
        candidates) are simply forgotten."""
        candidates = self._candidates
        held = candidates.get(header.ssrc)
        if held is None:
            candidates[header.ssrc] = held = []
            if len(candidates) > MAX_CANDIDATES:
                del candidates[next(iter(candidates))]
        in_sequence = any(_near(other, header, SPAN) for _, _, other in held[-_LOOKBACK:])
        held.append((arrival, data, header))
        if len(held) > MAX_HELD:
            del held[0]
        if not in_sequence or (current_seen is not None and arrival - current_seen < QUIET):
            return []
        candidates.clear()
        return [packet for packet in held if _near(packet[2], header, MAX_HELD) or packet[2] is header]


_LOOKBACK = 8  # held packets of a candidate that a new packet may continue


def _near(first: RtpHeader, second: RtpHeader, span: int) -> bool:
    distance = (second.sequence - first.sequence) & 0xFFFF
    return 0 < distance <= span or distance >= 0x10000 - span
