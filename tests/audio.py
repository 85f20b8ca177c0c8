"""Audio analysis for tests: what is in a recording, measured rather than trusted.

Samples are float64 in [-1, 1] (``soundfile``'s scale); integer arrays are scaled by their type's range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Audio:
    samples: FloatArray  # shape (frames, channels)
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def channel(self, index: int) -> FloatArray:
        return self.samples[:, index]


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    start: float  # seconds
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def read_audio(path: str | Path) -> Audio:
    """Any format libsndfile reads (WAV, FLAC, Ogg/Opus, ...), as float64 frames x channels."""
    data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    return Audio(samples=np.asarray(data, dtype=np.float64), sample_rate=int(rate))


def duration(path: str | Path) -> float:
    """Length in seconds from the file header (no decoding)."""
    info = soundfile.info(str(path))
    return float(info.frames) / float(info.samplerate)


def as_float(samples: npt.ArrayLike) -> FloatArray:
    array = np.asarray(samples)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        return array.astype(np.float64) / float(-info.min if info.min < 0 else info.max)
    return array.astype(np.float64)


def peak_frequency(channel: npt.ArrayLike, sample_rate: int) -> float:
    """The strongest frequency in Hz: Hann-windowed FFT, refined by parabolic interpolation on the log
    magnitude of the peak bin and its neighbours (error well under 1 Hz for a clean tone of 1 s)."""
    x = as_float(channel)
    if x.ndim != 1:
        raise ValueError("pass one channel")
    if len(x) < 64:
        raise ValueError("too few samples for a spectrum")
    x = x - np.mean(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:])) + 1
    offset = 0.0
    if 1 <= k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-20)
        denominator = a - 2 * b + c
        if denominator != 0:
            offset = 0.5 * (a - c) / denominator
    return float((k + offset) * sample_rate / len(x))


def rms(channel: npt.ArrayLike) -> float:
    x = as_float(channel)
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def channel_rms(audio: Audio) -> list[float]:
    return [rms(audio.channel(i)) for i in range(audio.channels)]


def dbfs(level: float) -> float:
    """An RMS or amplitude value in dB relative to full scale (-inf for silence)."""
    return float(20 * np.log10(level)) if level > 0 else float("-inf")


def silent_spans(
    channel: npt.ArrayLike,
    sample_rate: int,
    *,
    threshold_dbfs: float = -60.0,
    min_duration: float = 0.010,
) -> list[Span]:
    """Runs of samples whose magnitude stays below ``threshold_dbfs`` for at least ``min_duration``.

    Sample-exact (no framing), so a lost 20 ms packet shows as a 20 ms span. A tone's zero crossings
    last microseconds and never qualify; G.711 silence (0 for µ-law, ±8/32768 ≈ -72 dBFS for A-law)
    does.
    """
    x = np.abs(as_float(channel))
    quiet = x < 10 ** (threshold_dbfs / 20)
    if not quiet.any():
        return []
    edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    minimum = round(min_duration * sample_rate)
    return [
        Span(start=s / sample_rate, end=e / sample_rate)
        for s, e in zip(starts, ends, strict=True)
        if e - s >= minimum
    ]


def tone_present(
    channel: npt.ArrayLike, sample_rate: int, frequency: float, *, tolerance: float = 5.0
) -> bool:
    """Whether the strongest component of the channel is ``frequency`` (± ``tolerance`` Hz)."""
    return abs(peak_frequency(channel, sample_rate) - frequency) <= tolerance
