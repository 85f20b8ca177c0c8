"""Per-stream quality signals kept off the per-packet path: interarrival jitter and filled gaps (sans-I/O).

:class:`InterarrivalJitter` is RFC 3550 A.8 over placed audio packets, in arrival order. The transit time of
a packet is its arrival minus its media time; here the media time is its timeline position, which is its RTP
timestamp scaled to samples and stays continuous across re-anchors (a new SSRC or a timestamp jump anchors
at arrival), so a source change does not show up as one huge difference. The recurrence
``J += (|D| - J) / 16`` is linear, so a run of packets folds in with numpy as a weighted sum; runs are
collected batch by batch and folded every thousand packets or so, or when the value is read.

:class:`GapCounter` counts the samples of silence the timeline fills between placed audio: loss, DTX, late
packets, source changes. Placed runs extend a written span ``[low, high)``; a run beyond it adds the hole
before it, a run inside it (a reordered packet) fills one. Spans of pauses are left out; so is the space an
alignment move opens or closes (:meth:`GapCounter.shift`), which is counted as alignment.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import cast

import numpy as np

__all__ = ["GapCounter", "InterarrivalJitter"]

_DECAY = 15 / 16  # RFC 3550 A.8: the gain parameter 1/16
_FOLD_EVERY = 1024  # packets collected before they are folded into the estimate (numpy's fixed cost)
# (15/16)^(n-1), …, (15/16)^0: the weight of each packet's |D| in a run of n ending now
_WEIGHTS = _DECAY ** np.arange(2 * _FOLD_EVERY - 1, -1, -1.0)


class InterarrivalJitter:
    """Feed ``(arrivals, positions)`` runs with :meth:`push`; read :attr:`milliseconds`."""

    __slots__ = ("_arrivals", "_jitter", "_positions", "_rate", "_reference", "_transit")

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        # Collected since the last fold: 8 octets a packet, read by numpy without a copy.
        self._arrivals = array("d")
        self._positions = array("d")
        self._jitter = 0.0  # samples
        self._transit: float | None = None  # the latest packet's transit, samples
        self._reference: float | None = None  # an arrival time subtracted before scaling, for precision

    @property
    def milliseconds(self) -> float:
        """The current estimate, in milliseconds."""
        if self._arrivals:
            self.fold()
        return self._jitter * 1000 / self._rate

    def push(self, arrivals: list[float], positions: list[int]) -> None:
        """Packets placed in this batch: wall-clock arrivals and timeline positions, in arrival order."""
        self._arrivals.fromlist(arrivals)
        self._positions.fromlist(cast(list[float], positions))  # stored as doubles, exactly (far below 2**53)
        if len(self._arrivals) >= _FOLD_EVERY:
            self.fold()

    def push_run(self, arrivals: list[float], first: int, step: int) -> None:
        """Packets placed back to back: at ``first``, ``first + step``, …, one per arrival."""
        self._arrivals.fromlist(arrivals)
        end = first + step * len(arrivals)
        self._positions.frombytes(np.arange(first, end, step, dtype=np.float64).tobytes())
        if len(self._arrivals) >= _FOLD_EVERY:
            self.fold()

    def shift(self, samples: int) -> None:
        """Positions move by ``samples`` from now on: keep the transit continuous across the move."""
        if self._arrivals:
            self.fold()
        if self._transit is not None:
            self._transit -= samples

    def fold(self) -> None:
        """Fold the collected packets into the estimate."""
        count = len(self._arrivals)
        if not count:
            return
        arrivals = np.frombuffer(self._arrivals, dtype=np.float64)
        positions = np.frombuffer(self._positions, dtype=np.float64)
        self._arrivals = array("d")
        self._positions = array("d")
        if self._reference is None:
            self._reference = float(arrivals[0])
        transit = (arrivals - self._reference) * self._rate - positions
        differences = np.empty(count)
        differences[0] = 0.0 if self._transit is None else transit[0] - self._transit
        np.subtract(transit[1:], transit[:-1], out=differences[1:])
        np.abs(differences, out=differences)
        weights = _WEIGHTS[-count:] if count <= len(_WEIGHTS) else _DECAY ** np.arange(count - 1, -1, -1.0)
        self._jitter = _DECAY**count * self._jitter + float(weights @ differences) * (1 - _DECAY)
        self._transit = float(transit[-1])


class GapCounter:
    """Samples of silence filled inside a stream's written span; see the module docstring."""

    __slots__ = ("high", "low", "samples")

    def __init__(self) -> None:
        self.low: int | None = None
        self.high = 0
        self.samples = 0

    def record(self, runs: Sequence[tuple[int, int, int]], pauses: Sequence[tuple[int, int]] = ()) -> None:
        """Placed runs ``(position, first, last)`` (``last - first`` samples each) in the order written;
        ``pauses`` are the spans left out (pauses, key presses) as positions ``[begin, end)``."""
        low, high, samples = self.low, self.high, self.samples
        for pos, first, last in runs:
            end = pos + last - first
            if low is None:
                low, high = pos, end
            elif pos >= high:
                samples += pos - high - _overlap(high, pos, pauses)
                high = end
            elif end <= low:
                samples += low - end - _overlap(end, low, pauses)
                low = pos
            else:  # inside the span: fills a hole (a reordered packet)
                samples -= min(end, high) - max(pos, low)
                high = max(high, end)
                low = min(low, pos)
        self.low, self.high, self.samples = low, high, max(0, samples)

    def shift(self, samples: int) -> None:
        """Later runs are placed ``samples`` away: what that opens or overwrites is not a gap (a hole inside
        an overwritten stretch stays counted: the counter does not know where its holes are)."""
        if self.low is not None:
            self.high += samples


def _overlap(begin: int, end: int, spans: Sequence[tuple[int, int]]) -> int:
    """Samples of ``[begin, end)`` inside any of ``spans`` (which may overlap: a key press during a pause)."""
    covered, reached = 0, begin
    for a, b in sorted((max(begin, a), min(end, b)) for a, b in spans if a < end and b > begin):
        if b > reached:
            covered += b - max(a, reached)
            reached = b
    return covered
