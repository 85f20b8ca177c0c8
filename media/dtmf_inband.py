"""In-band DTMF: key presses found in a stream's decoded PCM (sans-I/O, one detector per stream).

For streams without RFC 4733 telephone-event. :class:`media.goertzel.WindowAnalyser` lists the 16 ms windows
(one every 8 ms) that hold a digit; this module turns runs of them into key presses, ITU-T Q.24 style:
- a digit starts after 3 consecutive windows agree, and counts if its tone lasted at least 24 ms: 40 ms tones
  always count, 20 ms tones, clicks and a vowel that briefly looks like a digit do not;
- it ends after 3 windows without it: pauses of 25 ms and more separate presses (40 ms always do), breaks of
  10 ms inside a tone are bridged;
- start and end are placed inside the edge windows from their tone power against the press's peak (the DFT
  magnitude grows with the share of the window the tone covers), to a few milliseconds.

Audio is analysed in batches (``batch`` seconds, 0.5 by default): presses are reported up to that much later,
and the fixed cost per analysis is paid twice a second rather than per packet. Runs are walked in Python,
windows are not.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from media.dtmf import DtmfEvent, DtmfSource
from media.goertzel import KEYPAD, ToneWindows, WindowAnalyser

__all__ = ["InbandDtmfDetector"]

_ON = 3  # consecutive windows to accept a digit
_OFF = 3  # consecutive windows without it to end it
_SHORTEST = 0.024  # seconds: shorter tones are not presses (Q.24: 40 ms must count, 20 ms must not)


class InbandDtmfDetector:
    """Feed decoded PCM in any chunk sizes; get key presses once they have ended."""

    __slots__ = (
        "_analyser",
        "_candidate",
        "_candidate_first",
        "_candidate_hits",
        "_candidate_next",
        "_candidate_peak",
        "_candidate_power",
        "_digit",
        "_first",
        "_first_power",
        "_last",
        "_last_power",
        "_misses",
        "_next",
        "_offset",
        "_peak",
        "_shortest",
    )

    def __init__(self, sample_rate: int, *, batch: float = 0.5) -> None:
        self._analyser = WindowAnalyser(sample_rate, round(batch * sample_rate))
        self._shortest = round(_SHORTEST * sample_rate)
        self._offset = 0  # sample index of block 0 (moves back by the padding each flush adds)
        self._digit = -1  # the digit being pressed (KEYPAD index), -1 if none
        self._first = self._last = 0  # its first and last windows
        self._first_power = self._last_power = self._peak = 0.0
        self._misses = 0
        self._next = 0  # the first window not walked yet
        self._candidate = -1  # a digit seen in fewer than _ON consecutive windows so far
        self._candidate_first = self._candidate_hits = self._candidate_next = 0
        self._candidate_power = self._candidate_peak = 0.0

    def feed(self, pcm: npt.NDArray[np.int16]) -> list[DtmfEvent]:
        """Presses that ended within the audio analysed so far (``pcm`` is copied: the caller may reuse it)."""
        if pcm.ndim != 1:
            raise ValueError(f"PCM must be one channel (1-D), got shape {pcm.shape}")
        windows = self._analyser.push(pcm)
        return [] if windows is None else self._walk(windows)

    def flush(self) -> list[DtmfEvent]:
        """End of stream: analyse what is buffered and end a press still going. Feeding may go on afterwards."""
        hop = self._analyser.hop
        pad = (hop - self._analyser.pending) % hop + hop  # complete the block, then one silent block after it
        windows = self._analyser.push(np.zeros(pad, dtype=np.int16), force=True)
        events = [] if windows is None else self._walk(windows)
        if self._digit >= 0:
            self._end(events)
        self._offset -= pad
        self._candidate = -1
        self._analyser.reset()
        return events

    def _walk(self, windows: ToneWindows) -> list[DtmfEvent]:
        events: list[DtmfEvent] = []
        index, digit, power = windows.index, windows.digit, windows.power
        if index.size:
            # Runs: consecutive windows holding the same digit.
            breaks = np.flatnonzero((np.diff(index) != 1) | (np.diff(digit) != 0)) + 1
            for start, stop in zip([0, *breaks.tolist()], [*breaks.tolist(), index.size], strict=True):
                self._quiet(int(index[start]) - self._next, events)
                self._run(int(digit[start]), int(index[start]), power[start:stop], events)
                self._next = int(index[stop - 1]) + 1
        self._quiet(windows.end - self._next, events)
        self._next = max(self._next, windows.end)
        return events

    def _quiet(self, count: int, events: list[DtmfEvent]) -> None:
        """``count`` windows without a digit."""
        if count <= 0:
            return
        self._candidate = -1
        if self._digit >= 0:
            self._misses += count
            if self._misses >= _OFF:
                self._end(events)

    def _run(self, value: int, first: int, power: npt.NDArray[np.float32], events: list[DtmfEvent]) -> None:
        """Consecutive windows ``first``... holding digit ``value`` with tone ``power``."""
        last = first + power.size - 1
        peak = float(power.max())
        if value == self._digit:
            self._last, self._last_power = last, float(power[-1])
            self._peak = max(self._peak, peak)
            self._misses = 0
            self._candidate = -1
            return
        if self._digit >= 0:  # another digit: a miss for the one held
            self._misses += power.size
            if self._misses >= _OFF:
                self._end(events)
        if value == self._candidate and first == self._candidate_next:  # continued from the previous batch
            self._candidate_hits += power.size
            self._candidate_peak = max(self._candidate_peak, peak)
        else:
            self._candidate = value
            self._candidate_first, self._candidate_power = first, float(power[0])
            self._candidate_hits = power.size
            self._candidate_peak = peak
        self._candidate_next = last + 1
        if self._digit < 0 and self._candidate_hits >= _ON:
            self._digit = value
            self._first, self._first_power = self._candidate_first, self._candidate_power
            self._last, self._last_power = last, float(power[-1])
            self._peak = self._candidate_peak
            self._misses = 0
            self._candidate = -1

    def _end(self, events: list[DtmfEvent]) -> None:
        """Release the digit held, reporting it unless its tone was too short."""
        hop, window = self._analyser.hop, self._analyser.window
        peak = max(self._peak, 1.0)
        lead = 1.0 - min(1.0, (self._first_power / peak) ** 0.5)  # share of the first window before the tone
        tail = min(1.0, (self._last_power / peak) ** 0.5)  # share of the last window the tone still covers
        start = max(self._offset + self._first * hop + round(lead * window), 0)
        end = self._offset + self._last * hop + round(tail * window)
        digit = KEYPAD[self._digit]
        self._digit = -1
        if end - start >= self._shortest:
            events.append(DtmfEvent(digit=digit, source=DtmfSource.INBAND, start=start, duration=end - start))
