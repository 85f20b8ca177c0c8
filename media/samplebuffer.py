"""Samples at absolute timeline positions, handed out once in order (sans-I/O).

Invariants: the array covers ``[base, base + capacity)``; every position nothing was written to reads as zero
(silence); positions before ``emitted`` are gone and only :meth:`SampleBuffer.take` moves ``emitted``, always
forward. Writes land at or after ``emitted`` (the timeline drops late packets before they get here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["SampleBuffer"]

Pcm = npt.NDArray[np.int16]
_EMPTY: Pcm = np.zeros(0, dtype=np.int16)
_EMPTY.flags.writeable = False


class SampleBuffer:
    __slots__ = ("_base", "_buf", "_emitted", "_end", "_initial", "_start")

    def __init__(self, initial_capacity: int) -> None:
        self._initial = max(1, initial_capacity)
        self._buf: Pcm = _EMPTY
        self._base: int | None = None
        self._emitted: int | None = None
        self._start: int | None = None
        self._end: int | None = None

    @property
    def emitted(self) -> int | None:
        """Position up to which samples were taken; ``None`` before the first take or seek."""
        return self._emitted

    @property
    def start(self) -> int | None:
        """The earliest position ever written."""
        return self._start

    @property
    def end(self) -> int | None:
        """Just past the latest position ever written."""
        return self._end

    def write(self, runs: Sequence[tuple[int, int, int]], samples: Pcm, low: int, high: int) -> None:
        """Copy ``samples[first:last]`` to position ``pos`` for each ``(pos, first, last)`` run.

        ``low``/``high`` bound all runs; a later run overwrites an earlier one where they overlap.
        """
        buf = self._reserve(low, high)
        base = self._base
        assert base is not None
        for pos, first, last in runs:
            at = pos - base
            buf[at : at + last - first] = samples[first:last]
        self._start = low if self._start is None else min(self._start, low)
        self._end = high if self._end is None else max(self._end, high)

    def span(self, pos: int, count: int) -> Pcm:
        """A writable view of positions ``[pos, pos + count)``, which count as written from now on: fill it
        before anything else touches the buffer (``count`` > 0)."""
        buf = self._reserve(pos, pos + count)
        base = self._base
        assert base is not None
        self._start = pos if self._start is None else min(self._start, pos)
        self._end = pos + count if self._end is None else max(self._end, pos + count)
        return buf[pos - base : pos - base + count]

    def relocate(self, samples: int) -> None:
        """Move everything written ``samples`` later (negative: earlier); only before the first take or seek."""
        if self._emitted is not None:
            raise ValueError("samples already handed out cannot move")
        if self._base is not None:
            self._base += samples
        if self._start is not None:
            self._start += samples
        if self._end is not None:
            self._end += samples

    def seek(self, pos: int) -> None:
        """Start emission at ``pos``, or move it forward, discarding what lies before."""
        if self._emitted is not None and pos < self._emitted:
            raise ValueError("the emitted position only moves forward")
        if self._base is not None and pos < self._base:
            self._grow_front(pos)
        self._emitted = pos

    def take(self, until: int) -> Pcm:
        """Samples ``[emitted, until)``; emission starts at :attr:`start` if nothing was taken yet."""
        emitted = self._emitted
        if emitted is None:
            if self._start is None:
                return _EMPTY
            emitted = self._start
            self.seek(emitted)
        count = until - emitted
        if count <= 0:
            return _EMPTY
        self._emitted = until
        base = self._base
        if base is None:
            return np.zeros(count, dtype=np.int16)
        buf = self._buf
        capacity = len(buf)
        lo = emitted - base
        hi = until - base
        if hi <= capacity:
            out = buf[lo:hi].copy()
        else:
            out = np.zeros(count, dtype=np.int16)
            if lo < capacity:
                out[: capacity - lo] = buf[lo:]
        if hi >= capacity // 2:  # move the unread tail to the front: writes rarely need to move data
            if hi >= capacity:
                buf[:] = 0
            else:
                tail = capacity - hi
                buf[:tail] = buf[hi:]
                buf[tail:] = 0
            self._base = until
        return out

    def _reserve(self, low: int, high: int) -> Pcm:
        """Make the array cover ``[low, high)``, compacting or growing it."""
        base = self._base
        if base is None:
            base = low if self._emitted is None else min(low, self._emitted)
            self._buf = np.zeros(max(self._initial, high - base), dtype=np.int16)
            self._base = base
            return self._buf
        if low < base:  # before the first take: a reordered packet older than anything written so far
            self._grow_front(low)
            base = low
        buf = self._buf
        if high - base <= len(buf):
            return buf
        keep_from = base if self._emitted is None else self._emitted
        end = self._end if self._end is not None else keep_from
        used = max(0, min(len(buf), end - base) - (keep_from - base))
        capacity = len(buf)
        while capacity < high - keep_from:
            capacity *= 2
        start = keep_from - base
        if capacity == len(buf):
            buf[:used] = buf[start : start + used]
            buf[used:] = 0
        else:
            grown = np.zeros(capacity, dtype=np.int16)
            grown[:used] = buf[start : start + used]
            self._buf = buf = grown
        self._base = keep_from
        return buf

    def _grow_front(self, pos: int) -> None:
        assert self._base is not None
        grown = np.zeros(len(self._buf) + (self._base - pos), dtype=np.int16)
        grown[self._base - pos :] = self._buf
        self._buf = grown
        self._base = pos
