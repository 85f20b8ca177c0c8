"""What a recording's audio shows, channel by channel: its dominant frequency, where sound starts and ends,
and its longest silence inside that span (pure numpy, run in worker processes for many files at once).

A tone decoded from G.711 or G.722 is never exactly silent for more than a sample or two around its zero
crossings, while the recorder writes digital silence for every packet it did not get; so a run of samples at
(or within a couple of steps of) zero lasting a millisecond or more is a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile

from storage.sealed import open_plain

__all__ = ["AudioFacts", "ChannelFacts", "analyse_file", "channel_facts", "dominant_frequency"]

SILENCE = 2  # int16 steps: at or below this a sample is silent
MIN_GAP = 0.001  # seconds: shorter silent runs are zero crossings


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFacts:
    peak_hz: float | None  # None when the channel is silent throughout
    first_sound: float | None  # seconds from the start of the file
    last_sound: float | None  # seconds from the start of the file, end of the last sounding sample
    longest_gap: float  # seconds of the longest silence between first and last sound
    gap_at: float | None  # where that silence starts


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioFacts:
    sample_rate: int
    frames: int
    channels: tuple[ChannelFacts, ...]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def analyse_file(path: str, data_key: bytes | None = None) -> AudioFacts:
    """The facts of a recording's audio; ``data_key`` decrypts a file stored sealed (storage.sealed)."""
    if data_key is None:
        samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    else:
        with open_plain(path, data_key) as plain:
            samples, rate = soundfile.read(plain, dtype="int16", always_2d=True)
    return AudioFacts(
        sample_rate=int(rate),
        frames=int(samples.shape[0]),
        channels=tuple(channel_facts(samples[:, c], int(rate)) for c in range(samples.shape[1])),
    )


def dominant_frequency(samples: npt.NDArray[np.int16], rate: int) -> float | None:
    """The strongest frequency (Hz), to a fraction of a bin by parabolic interpolation; None if silent."""
    if samples.size < 16 or not np.any(np.abs(samples) > SILENCE):
        return None
    x = samples.astype(np.float64) * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(x))
    spectrum[0] = 0.0  # ignore any DC offset
    k = int(np.argmax(spectrum))
    shift = 0.0
    if 0 < k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denominator = a - 2 * b + c
        shift = 0.5 * (a - c) / denominator if denominator else 0.0
    return float((k + shift) * rate / samples.size)


def channel_facts(samples: npt.NDArray[np.int16], rate: int) -> ChannelFacts:
    sounding = np.abs(samples.astype(np.int32)) > SILENCE
    where = np.flatnonzero(sounding)
    if where.size == 0:
        return ChannelFacts(peak_hz=None, first_sound=None, last_sound=None, longest_gap=0.0, gap_at=None)
    first, last = int(where[0]), int(where[-1])
    inside = ~sounding[first : last + 1]
    longest, gap_at = 0, None
    if inside.any():
        edges = np.diff(np.concatenate(([0], inside.view(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = ends - starts
        i = int(np.argmax(lengths))
        if lengths[i] >= MIN_GAP * rate:
            longest, gap_at = int(lengths[i]), (first + int(starts[i])) / rate
    return ChannelFacts(
        peak_hz=dominant_frequency(samples[first : last + 1], rate),
        first_sound=first / rate,
        last_sound=(last + 1) / rate,
        longest_gap=longest / rate,
        gap_at=gap_at,
    )
