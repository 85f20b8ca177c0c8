"""Who is paused, and when the recording as a whole was (sans-I/O; design guide §2.7).

A pause is a state, not a truncation: paused streams drop what arrives (audio and telephone events, counted as
``suppressed``) while the timeline keeps running as silence. Two sources of pause combine:

- the whole recording: hold (`a=inactive` or `c=0.0.0.0` on every m-line, RFC 3264 §8.4 / RFC 2543 hold), or
  the recording paused by API;
- one stream: a re-offer that sets one m-line `a=inactive` (RFC 3264 §6.1).

A stream is paused while either applies to it. The recording counts as paused, and gets a pause interval,
while it is paused as a whole or while every stream still received is paused on its own. Intervals are wall
times; :meth:`PauseState.offsets` turns them into offsets from the start of the audio.
"""

from __future__ import annotations

__all__ = ["PauseState"]


class PauseState:
    """Each change returns the streams whose own state flipped, as ``(index, paused)`` pairs."""

    __slots__ = ("_all", "_effective", "_intervals", "_live", "_streams")

    def __init__(self) -> None:
        self._all = False
        self._streams: set[int] = set()  # paused on their own
        self._live: list[int] = []  # streams still received, in the order they were added
        self._effective: set[int] = set()  # live streams currently dropping media
        self._intervals: list[list[float]] = []  # [start] while open, [start, end] once closed

    @property
    def paused(self) -> bool:
        """True while the recording as a whole is paused."""
        return bool(self._intervals) and len(self._intervals[-1]) == 1

    @property
    def intervals(self) -> list[tuple[float, float | None]]:
        """Pause intervals of the whole recording in wall time; the end is ``None`` while one is open."""
        return [(p[0], p[1] if len(p) == 2 else None) for p in self._intervals]

    def set_all(self, paused: bool, now: float) -> list[tuple[int, bool]]:
        self._all = paused
        return self._settle(now)

    def set_stream(self, index: int, paused: bool, now: float) -> list[tuple[int, bool]]:
        if index not in self._live:
            raise ValueError(f"no stream {index} is being received")
        if paused:
            self._streams.add(index)
        else:
            self._streams.discard(index)
        return self._settle(now)

    def add_stream(self, index: int, now: float) -> list[tuple[int, bool]]:
        """A stream that joins now: paused at once if the whole recording is."""
        self._live.append(index)
        return self._settle(now)

    def remove_stream(self, index: int, now: float) -> list[tuple[int, bool]]:
        """A stream that is no longer received; its own pause ends with it."""
        if index in self._live:
            self._live.remove(index)
        self._streams.discard(index)
        self._effective.discard(index)
        return self._settle(now)

    def last_end(self, now: float | None) -> float | None:
        """Where the last pause ends (``now`` for an open one; ``None`` if open and no ``now``, or none)."""
        if not self._intervals:
            return None
        last = self._intervals[-1]
        return last[1] if len(last) == 2 else now

    def offsets(self, start: float, until: float | None) -> list[tuple[float, float | None]]:
        """Intervals as seconds from ``start`` (the first frame), rounded to the millisecond.

        Parts before ``start`` are cut off; a pause that ended before it is left out. With ``until`` (the
        end of the audio, as an offset), intervals are cut there too and an open one ends there.
        """
        out: list[tuple[float, float | None]] = []
        for interval in self._intervals:
            begin = max(0.0, interval[0] - start)
            end: float | None = interval[1] - start if len(interval) == 2 else None
            if until is not None:
                end = until if end is None else min(end, until)
                if begin >= until:
                    continue
            if end is not None and end <= 0:
                continue
            out.append((round(begin, 3), None if end is None else round(end, 3)))
        return out

    def _settle(self, now: float) -> list[tuple[int, bool]]:
        changes: list[tuple[int, bool]] = []
        for index in self._live:
            want = self._all or index in self._streams
            if want != (index in self._effective):
                changes.append((index, want))
                if want:
                    self._effective.add(index)
                else:
                    self._effective.discard(index)
        whole = self._all or (bool(self._live) and all(index in self._streams for index in self._live))
        if whole and not self.paused:
            self._intervals.append([now])
        elif not whole and self.paused:
            self._intervals[-1].append(max(now, self._intervals[-1][0]))
        return changes
