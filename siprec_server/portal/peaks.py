"""The waveform of a recording: about a thousand (min, max) pairs per channel, computed on the server.

Why here and not in the browser: drawing it in the browser means fetching and decoding the whole file first
(Web Audio's ``decodeAudioData`` takes nothing less): megabytes for a long call, held in the page, and an
audited playback before the reader pressed play. The server decodes it once, a block at a time (memory stays
flat for an hour-long call), and answers ~10 KB of JSON; a small cache keyed by the recording and the hash of
its audio keeps repeated views free. The waveform tells nothing of what was said, so fetching it is not a
playback (it needs the ``listen`` permission all the same).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO
from uuid import UUID

import numpy as np
import numpy.typing as npt
import soundfile

from storage.audio_opener import AudioOpener
from storage.models import Recording

__all__ = ["BUCKETS", "Peaks", "PeaksCache", "compute_peaks", "recording_peaks"]

BUCKETS = 1000
_SCALE = 127  # peaks as integers in -127..127: small JSON, and finer than any screen draws them
_BLOCK = 1 << 16  # frames decoded at a time (rounded to whole buckets)


@dataclass(frozen=True, slots=True, kw_only=True)
class Peaks:
    """Per channel, the lowest and highest sample of each of up to :data:`BUCKETS` equal stretches."""

    duration: float  # seconds of audio
    sample_rate: int
    bucket_seconds: float
    lows: tuple[tuple[int, ...], ...]  # [channel][bucket], -127..127
    highs: tuple[tuple[int, ...], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "duration": self.duration,
            "sample_rate": self.sample_rate,
            "bucket_seconds": self.bucket_seconds,
            "scale": _SCALE,
            "channels": [
                {"min": list(low), "max": list(high)} for low, high in zip(self.lows, self.highs, strict=True)
            ],
        }


def _scaled(values: npt.NDArray[np.float32]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(np.rint(values * _SCALE), -_SCALE, _SCALE).astype(np.int16))


def compute_peaks(source: BinaryIO, buckets: int = BUCKETS) -> Peaks:
    """Decode ``source`` (any format libsndfile reads: FLAC, WAV, Ogg Opus, MP3) block by block. Blocking."""
    if buckets < 1:
        raise ValueError("at least one bucket")
    with soundfile.SoundFile(source) as audio:
        frames, channels, rate = int(audio.frames), int(audio.channels), int(audio.samplerate)
        # Frames per bucket; 10 ms when the header does not say how long the audio is (see _regrouped).
        per = max(1, -(-frames // buckets)) if frames > 0 else max(1, rate // 100)
        block = per * max(1, _BLOCK // per)
        lows: list[npt.NDArray[np.float32]] = []
        highs: list[npt.NDArray[np.float32]] = []
        decoded = 0
        for data in audio.blocks(blocksize=block, dtype="float32", always_2d=True):
            decoded += len(data)
            whole = len(data) // per
            if whole:
                shaped = data[: whole * per].reshape(whole, per, channels)
                lows.append(shaped.min(axis=1))
                highs.append(shaped.max(axis=1))
            rest = data[whole * per :]
            if len(rest):  # only the last block ends inside a bucket
                lows.append(rest.min(axis=0, keepdims=True))
                highs.append(rest.max(axis=0, keepdims=True))
    if lows:
        low, high = np.concatenate(lows).T, np.concatenate(highs).T
    else:
        low = high = np.zeros((channels, 0), dtype=np.float32)
    group = max(1, -(-low.shape[1] // buckets))
    low, high = _regrouped(low, group, np.minimum), _regrouped(high, group, np.maximum)
    return Peaks(
        duration=decoded / rate,
        sample_rate=rate,
        bucket_seconds=per * group / rate,
        lows=tuple(_scaled(row) for row in low),
        highs=tuple(_scaled(row) for row in high),
    )


def _regrouped(values: npt.NDArray[np.float32], group: int, combine: np.ufunc) -> npt.NDArray[np.float32]:
    """Every ``group`` adjacent buckets as one: for audio longer than its header said (an estimated length)."""
    if group == 1:
        return values
    channels, count = values.shape
    padded = np.concatenate([values, np.repeat(values[:, -1:], -count % group, axis=1)], axis=1)
    result: npt.NDArray[np.float32] = combine.reduce(padded.reshape(channels, -1, group), axis=2)
    return result


class PeaksCache:
    """The latest waveforms computed, by recording and audio hash (a re-encoded file gets a new hash)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[UUID, str | None], Peaks] = OrderedDict()

    def get(self, key: tuple[UUID, str | None]) -> Peaks | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[UUID, str | None], peaks: Peaks) -> None:
        self._entries[key] = peaks
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _decode(opener: AudioOpener, recording: Recording) -> Peaks:
    with opener(recording) as source:
        return compute_peaks(source)


async def recording_peaks(cache: PeaksCache, opener: AudioOpener, recording: Recording) -> Peaks:
    """The recording's waveform, decoded in a worker thread (the opener blocks while it fetches the key)
    unless cached."""
    key = (recording.id, recording.sha256)
    found = cache.get(key)
    if found is None:
        found = await asyncio.to_thread(_decode, opener, recording)
        cache.put(key, found)
    return found
