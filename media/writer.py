"""Incremental FLAC writer over libsndfile.

libsndfile hands each complete FLAC frame (1152 samples at level 0, 4096 from level 3) to ``write(2)`` as
soon as libFLAC encodes it, so the file grows while the call runs and a crashed process leaves every finished
frame in the file.
Such a file still says "total samples: 0 (unknown)" in STREAMINFO; libFLAC-based decoders read it to the end,
but libsndfile then reports an unbounded length and its readers fail. So after every frame that reaches the
file, the writer also stores the number of samples on disk in STREAMINFO (RFC 9639 §8.2): a file left behind
by a crash opens everywhere with that length. ``close()`` finishes the stream and libFLAC rewrites STREAMINFO
with the final count and the MD5 signature.

Durability is against process crashes, not power loss: nothing is fsynced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import soundfile

__all__ = ["MAX_FLAC_CHANNELS", "AudioWriter", "FlacWriter", "recorded_duration"]

MAX_FLAC_CHANNELS = 8  # RFC 9639 §9.1.3: the frame header's channel field codes 1-8 independent channels

_STREAMINFO_AT = 8  # "fLaC" marker, then the 4-octet header of the first metadata block: STREAMINFO
_TOTAL_SAMPLES_AT = _STREAMINFO_AT + 10  # 64 bits: rate (20), channels - 1 (3), bits - 1 (5), total (36)
_TOTAL_SAMPLES_MASK = (1 << 36) - 1


class AudioWriter(Protocol):
    """Where a recording's frames go: int16 arrays shaped ``(n, channels)``."""

    def write(self, frames: npt.NDArray[np.int16]) -> None: ...

    def close(self) -> None: ...


class FlacWriter:
    """Writes int16 frames to a FLAC file (16-bit PCM) as they come; blocking: keep it off the event loop.

    libsndfile writes the FLAC header with the first frames, so a writer closed without any frame would
    leave an empty file that is not a FLAC stream: close() removes it (no media, no file).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        channels: int,
        sample_rate: int,
        *,
        compression_level: float = 0.0,
    ) -> None:
        """``compression_level`` 0.0-1.0 maps to FLAC levels 0-8. G.711-sourced audio carries µ-law
        quantisation noise that LPC cannot remove: on such speech the higher levels produced files of the
        same size for ~30% more CPU, hence level 0."""
        if not 1 <= channels <= MAX_FLAC_CHANNELS:
            raise ValueError(f"FLAC holds 1 to {MAX_FLAC_CHANNELS} channels, not {channels}")
        self._path = os.fspath(path)
        self._channels = channels
        self._file = soundfile.SoundFile(
            self._path,
            "w",
            samplerate=sample_rate,
            channels=channels,
            format="FLAC",
            subtype="PCM_16",
            compression_level=compression_level,
        )
        self._frames = 0
        self._patched = 0
        self._closed = False
        self._header_fd = -1
        self._block_size = 0
        self._format_bits = 0
        self._header_checked = False

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def path(self) -> str:
        return self._path

    def write(self, frames: npt.NDArray[np.int16]) -> None:
        if self._closed:
            raise ValueError("write to a closed FlacWriter")
        if frames.ndim != 2 or frames.shape[1] != self._channels:
            raise ValueError(f"expected frames shaped (n, {self._channels}), got {frames.shape}")
        if not len(frames):
            return
        self._file.write(frames)
        self._frames += len(frames)
        if not self._header_checked:  # libsndfile writes the FLAC header with the first samples
            self._header_checked = True
            self._open_header()
        if self._block_size:
            # libFLAC encodes a block once it holds one sample more than the block size (its lookahead).
            on_disk = (self._frames - 1) // self._block_size * self._block_size
            if on_disk > self._patched:
                self._store_total(on_disk)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._file.close()
        finally:
            if self._header_fd >= 0:
                os.close(self._header_fd)
                self._header_fd = -1
        if not self._frames:
            Path(self._path).unlink(missing_ok=True)

    def _open_header(self) -> None:
        """Check the STREAMINFO libsndfile wrote; keep a second descriptor to update its sample count."""
        fd = os.open(self._path, os.O_RDWR)
        head = os.pread(fd, _TOTAL_SAMPLES_AT + 8, 0)
        min_block = int.from_bytes(head[8:10], "big")
        max_block = int.from_bytes(head[10:12], "big")
        if head[:4] != b"fLaC" or head[4] & 0x7F != 0 or min_block != max_block or min_block == 0:
            os.close(fd)  # not the layout this writer knows: leave the header alone
            return
        self._header_fd = fd
        self._block_size = min_block
        self._format_bits = int.from_bytes(head[_TOTAL_SAMPLES_AT:], "big") & ~_TOTAL_SAMPLES_MASK

    def _store_total(self, total: int) -> None:
        field = self._format_bits | (total & _TOTAL_SAMPLES_MASK)
        os.pwrite(self._header_fd, field.to_bytes(8, "big"), _TOTAL_SAMPLES_AT)
        self._patched = total


def recorded_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in a recording file, also one a crashed writer left behind (its STREAMINFO is kept
    current, see above). Blocking."""
    info = soundfile.info(os.fspath(path))
    return float(info.frames) / float(info.samplerate)
