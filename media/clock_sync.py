"""The streams of one call aligned on the SRC's clock through RTCP sender reports (RFC 3550 §6.4.1; sans-I/O).

Each stream is placed by RTP timestamp from its first packet's arrival, so a path delayed by 200 ms puts that
stream 200 ms late. The SRC forks every leg of a call from one clock, and its sender reports map that clock
(NTP) to each stream's RTP timestamps. A :class:`SyncPoint` is that mapping on the timeline: the NTP time of
an SR and where its RTP timestamp lies. Two points give the stream's *lag*: how much later one stream is
placed than another for the same instant at the SRC.

:func:`alignment` moves every stream onto the least-delayed one (the reference) by shifting the others
earlier; audio already placed cannot move, so a shift drops (earlier) or pads (later) its size once and
the stream then stays aligned. A stream may move earlier by at most ``max_advance`` in all (what the reorder
window leaves after a margin for jitter), or its packets would land where the recording was already written;
when the paths differ by more, the reference moves later instead. Lags beyond :data:`MAX_SKEW` cannot come
from one clock: :func:`consistent` rejects such a point (an SR lying about its NTP time). An SRC that relays
the participants' own reports instead of sending its own is aligned as well as the participants' clocks agree:
NTP-synchronised phones agree within milliseconds, free-running ones usually by far more than MAX_SKEW.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ALIGN_MARGIN", "MAX_SKEW", "TOLERANCE", "SyncPoint", "alignment", "consistent", "lag"]

MAX_SKEW = 0.5  # seconds: streams of one SRC whose reports disagree by more are not on one clock
ALIGN_MARGIN = 0.1  # seconds of the reorder window kept for network jitter after a stream moved earlier
TOLERANCE = 0.002  # seconds: smaller misalignments are left alone (no drop or pad for rounding)

_NTP_UNIT = 1 << 32  # NTP timestamps are 32.32 fixed-point seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncPoint:
    """A sender report on the timeline: at SRC time ``ntp`` (64-bit NTP) the stream was at ``position``."""

    ntp: int
    position: int


def lag(point: SyncPoint, reference: SyncPoint, sample_rate: int) -> float:
    """Samples by which ``point``'s stream is placed later than ``reference``'s for the same SRC instant."""
    return (point.position - reference.position) - (point.ntp - reference.ntp) * sample_rate / _NTP_UNIT


def consistent(candidate: SyncPoint, others: Iterable[SyncPoint], sample_rate: int) -> bool:
    """True if no other stream has a point, or ``candidate`` agrees with one of them within MAX_SKEW."""
    bound = MAX_SKEW * sample_rate
    seen = False
    for other in others:
        seen = True
        if abs(lag(candidate, other, sample_rate)) <= bound:
            return True
    return not seen


def alignment(
    points: Mapping[int, SyncPoint],
    offsets: Mapping[int, int],
    sample_rate: int,
    max_advance: int,
) -> dict[int, int]:
    """Shifts in samples (negative: earlier) that align the streams with ``points``; ``offsets`` are the
    shifts each already had. Streams within :data:`TOLERANCE` of their place are left out."""
    if len(points) < 2:
        return {}
    reference = next(iter(points.values()))
    lags = {index: lag(point, reference, sample_rate) for index, point in points.items()}
    # The least-delayed stream sets the target, unless another would then move earlier than allowed.
    target = max(
        min(lags.values()),
        max(value - offsets.get(index, 0) for index, value in lags.items()) - max_advance,
    )
    tolerance = TOLERANCE * sample_rate
    shifts = {index: round(target - value) for index, value in lags.items()}
    return {index: shift for index, shift in shifts.items() if abs(shift) >= tolerance}
