"""Incremental FLAC writer, into a plain file or any random-access sink (an encrypting file).

libFLAC encodes, called directly (:mod:`media.libflac`, no MD5 signature) where it is installed, else through
libsndfile. It hands each complete FLAC frame (1152 samples at level 0, 4096 from level 3) to the writer as soon
as it is encoded (``write``/``seek``/``tell``, libsndfile's virtual I/O; FLAC encoding never reads back);
the frames of one :meth:`FlacWriter.write` reach the sink's ``write`` together before it returns, so the file
grows while the call runs. A sink may hold the end of what it was given in memory (the encrypting file of
:mod:`storage.sealed` keeps its last, partial chunk): the writer calls the sink's ``flush`` after each write
(or every ``flush_every`` seconds of audio), so a crashed process leaves every frame finished before that flush
on disk.
Such a file still says "total samples: 0 (unknown)" in STREAMINFO; libFLAC-based decoders read it to the end,
but libsndfile then reports an unbounded length and its readers fail. So at a flush, once the frames are on
disk, the writer also stores their number in STREAMINFO (RFC 9639 §8.2) with the sink's ``pwrite`` (at every
flush, or every ``count_every`` seconds of audio): a file left behind by a crash opens everywhere with that
length, and crash recovery (:func:`restore_sample_count`) brings the count up to every frame on disk.
``close()`` finishes the stream (libFLAC rewrites STREAMINFO with the final count, and the MD5 signature when
it goes through libsndfile), then closes the sink.

Durability is against process crashes, not power loss: nothing is fsynced.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import numpy as np
import numpy.typing as npt
import soundfile

from . import libflac

__all__ = [
    "MAX_FLAC_CHANNELS",
    "AudioWriter",
    "FileSink",
    "FlacWriter",
    "RandomAccessSink",
    "recorded_duration",
    "restore_sample_count",
]

MAX_FLAC_CHANNELS = 8  # RFC 9639 §9.1.3: the frame header's channel field codes 1-8 independent channels

_STREAMINFO_AT = 8  # "fLaC" marker, then the 4-octet header of the first metadata block: STREAMINFO
_TOTAL_SAMPLES_AT = _STREAMINFO_AT + 10  # 64 bits: rate (20), channels - 1 (3), bits - 1 (5), total (36)
_TOTAL_SAMPLES_MASK = (1 << 36) - 1
_FILE_MODE = 0o644  # what libsndfile gives the files it creates itself


class AudioWriter(Protocol):
    """Where a recording's frames go: int16 arrays shaped ``(n, channels)``."""

    def write(self, frames: npt.NDArray[np.int16]) -> None: ...

    def close(self) -> None: ...


class RandomAccessSink(Protocol):
    """A new binary file the FLAC stream is encoded into: appended to at its position, patched in place.

    :class:`FileSink` is a plain file; ``storage.sealed.SealedWriter`` encrypts as it goes. ``flush`` puts
    everything written so far on disk (for a crash, not for power loss); ``close`` finishes the file."""

    @property
    def name(self) -> str:
        """The file's path."""
        ...

    def write(self, data: bytes, /) -> int: ...

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int: ...

    def tell(self) -> int: ...

    def pread(self, size: int, offset: int, /) -> bytes: ...

    def pwrite(self, data: bytes, offset: int, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """A plain file as a :class:`RandomAccessSink`: created (or truncated) at ``path``, written straight to
    the operating system, so ``flush`` has nothing to do."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = os.fspath(path)
        self._fd = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)

    def write(self, data: bytes, /) -> int:
        return os.write(self._check(), data)

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return os.lseek(self._check(), offset, whence)

    def tell(self) -> int:
        return os.lseek(self._check(), 0, io.SEEK_CUR)

    def pread(self, size: int, offset: int, /) -> bytes:
        return os.pread(self._check(), size, offset)

    def pwrite(self, data: bytes, offset: int, /) -> int:
        return os.pwrite(self._check(), data, offset)

    def flush(self) -> None:
        self._check()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def _check(self) -> int:
        if self._fd < 0:
            raise ValueError(f"I/O operation on the closed file {self.name}")
        return self._fd


class _VirtualFile:
    """The sink as libsndfile's virtual I/O sees it. libFLAC hands over each FLAC frame (1152 samples at level
    0: seven a second of 8 kHz audio) on its own; what is appended is held here and given to the sink in one
    ``write`` per :meth:`FlacWriter.write` (:meth:`drain`), which spares the sink six calls in seven (a system
    call for a plain file, the chunking of an encrypting one). A seek drains first, so the sink sees the
    writes in their order. libsndfile cannot pass a Python exception on (its callbacks report failure by a
    short count), so the first one is kept for :class:`FlacWriter` to raise."""

    __slots__ = ("error", "pending", "sink")

    def __init__(self, sink: RandomAccessSink) -> None:
        self.sink = sink
        self.pending = bytearray()  # written after the sink's position, not yet handed to the sink
        self.error: Exception | None = None

    def write(self, data: bytes) -> int:
        if self.error is not None:
            return 0
        self.pending += data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            self.drain()
            return self.sink.seek(offset, whence)
        except Exception as exc:
            self._fail(exc)
            return -1

    def tell(self) -> int:
        try:
            return self.sink.tell() + len(self.pending)
        except Exception as exc:
            self._fail(exc)
            return -1

    def drain(self) -> None:
        """Hand what is pending to the sink; its error is kept (and raised)."""
        if not self.pending:
            return
        data, self.pending = bytes(self.pending), bytearray()
        try:
            if self.sink.write(data) != len(data):
                raise OSError(f"short write to {self.sink.name} (is the disk full?)")
        except Exception as exc:
            self._fail(exc)
            raise

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc


class FlacWriter:
    """Writes int16 frames as FLAC (16-bit PCM) as they come; blocking: keep it off the event loop.

    ``target`` is a path (a plain file is created there) or an open sink, which the writer then owns: it
    closes it, also when this constructor fails. libsndfile writes the FLAC header with the first frames, so a
    writer closed without any frame would leave a file that is not a FLAC stream: close() removes it (no media,
    no file).
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | RandomAccessSink,
        channels: int,
        sample_rate: int,
        *,
        compression_level: float = 0.0,
        flush_every: float = 0.0,
        count_every: float = 0.0,
    ) -> None:
        """``compression_level`` 0.0-1.0 maps to FLAC levels 0-8. G.711-sourced audio carries µ-law
        quantisation noise that LPC cannot remove: on such speech the higher levels produced files of the
        same size for ~30% more CPU, hence level 0. ``flush_every``: seconds of audio between two flushes of
        the sink; 0 flushes after every :meth:`write`, so the caller's write interval sets how much a crash can
        lose. ``count_every``: seconds of audio between two updates of the STREAMINFO sample count (each at a
        flush; the first at the first flush); 0 updates it at every flush. An update rewrites the start of the
        file, which costs an encrypting sink the re-sealing of its first chunk; crash recovery
        (:func:`restore_sample_count`) counts the frames again, so a count that lags loses nothing."""
        owned = None if isinstance(target, (str, os.PathLike)) else target  # closed here if this fails
        try:
            if not 1 <= channels <= MAX_FLAC_CHANNELS:
                raise ValueError(f"FLAC holds 1 to {MAX_FLAC_CHANNELS} channels, not {channels}")
            if flush_every < 0 or count_every < 0:
                raise ValueError("flush_every and count_every must not be negative")
            sink = owned = FileSink(target) if isinstance(target, (str, os.PathLike)) else target
            self._sink: RandomAccessSink = sink
            self._io = _VirtualFile(sink)
            self._encode, self._finish = _encoder(self._io, channels, sample_rate, compression_level)
        except BaseException:
            if owned is not None:
                _discard(owned)
            raise
        self._channels = channels
        self._flush_frames = round(flush_every * sample_rate)
        self._count_frames = round(count_every * sample_rate)
        self._frames = 0
        self._flushed = 0  # frames written when the sink was last flushed
        self._patched = 0
        self._closed = False
        self._block_size = 0
        self._format_bits = 0
        self._header_checked = False

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._frames

    @property
    def path(self) -> str:
        return self._sink.name

    def write(self, frames: npt.NDArray[np.int16]) -> None:
        """Encode ``frames``; flush the sink when due. The sink's own error (disk full, a closed file) is
        raised as it is."""
        if self._closed:
            raise ValueError("write to a closed FlacWriter")
        if frames.ndim != 2 or frames.shape[1] != self._channels or frames.dtype != np.int16:
            raise ValueError(
                f"expected int16 frames shaped (n, {self._channels}), got {frames.dtype} {frames.shape}"
            )
        if not len(frames):
            return
        self._io.raise_error()  # an earlier failure left the stream incomplete: nothing more goes after it
        try:
            self._encode(frames)
        except Exception as exc:
            if self._io.error is not None:
                raise self._io.error from exc
            raise
        self._io.drain()  # this write's FLAC frames to the sink, in one piece; raises the sink's error
        self._frames += len(frames)
        if not self._header_checked:  # the FLAC header is on the sink by now
            self._header_checked = True
            self._read_header()
        if self._frames - self._flushed >= self._flush_frames:
            self._flush()

    def close(self) -> None:
        """Finish the stream and close the sink (both also after an error); a file without frames is
        removed. The sink's error, if any, is raised after that."""
        if self._closed:
            return
        self._closed = True
        try:
            self._finish()
            self._io.drain()  # the last frames and the final STREAMINFO
        finally:
            try:
                self._sink.close()
            finally:
                if not self._frames:
                    Path(self._sink.name).unlink(missing_ok=True)
        self._io.raise_error()

    def _flush(self) -> None:
        """The frames on disk first, then the count that claims them: a crash in between leaves a file that
        says less than it holds, never more."""
        self._sink.flush()
        self._flushed = self._frames
        if self._block_size:
            # libFLAC encodes a block once it holds one sample more than the block size (its lookahead).
            in_sink = (self._frames - 1) // self._block_size * self._block_size
            due = not self._patched or in_sink - self._patched >= self._count_frames
            if in_sink > self._patched and due:
                field = self._format_bits | (in_sink & _TOTAL_SAMPLES_MASK)
                self._sink.pwrite(field.to_bytes(8, "big"), _TOTAL_SAMPLES_AT)
                self._sink.flush()  # the header may still be in the sink's buffer (an encrypted first chunk)
                self._patched = in_sink

    def _read_header(self) -> None:
        """Check the STREAMINFO libsndfile wrote before its sample count is kept current."""
        head = self._sink.pread(_TOTAL_SAMPLES_AT + 8, 0)
        if len(head) < _TOTAL_SAMPLES_AT + 8:
            return
        min_block = int.from_bytes(head[8:10], "big")
        max_block = int.from_bytes(head[10:12], "big")
        if head[:4] != b"fLaC" or head[4] & 0x7F != 0 or min_block != max_block or min_block == 0:
            return  # not the layout this writer knows: leave the header alone
        self._block_size = min_block
        self._format_bits = int.from_bytes(head[_TOTAL_SAMPLES_AT:], "big") & ~_TOTAL_SAMPLES_MASK


def _encoder(
    sink: _VirtualFile, channels: int, sample_rate: int, compression_level: float
) -> tuple[Callable[[npt.NDArray[np.int16]], None], Callable[[], None]]:
    """(encode, finish) of a FLAC stream into ``sink``: libFLAC itself without the MD5 signature where it can
    be loaded (:mod:`media.libflac`), else libsndfile (which always computes it)."""
    if libflac.available():
        encoder = libflac.StreamEncoder(
            sink.write,
            sink.seek,
            sink.tell,
            channels=channels,
            sample_rate=sample_rate,
            level=round(compression_level * 8),
        )
        sink.raise_error()
        return encoder.encode, encoder.finish
    file = soundfile.SoundFile(
        sink,
        "w",
        samplerate=sample_rate,
        channels=channels,
        format="FLAC",
        subtype="PCM_16",
        compression_level=compression_level,
    )

    def encode(frames: npt.NDArray[np.int16]) -> None:
        # buffer_write skips SoundFile.write's checks of what FlacWriter checked (12 µs a call, 5 this way)
        file.buffer_write(np.ascontiguousarray(frames), dtype="int16")

    return encode, file.close


def _discard(sink: RandomAccessSink) -> None:
    """A writer that could not start: close its sink and remove the file (nothing was encoded into it)."""
    try:
        sink.close()
    finally:
        Path(sink.name).unlink(missing_ok=True)


def recorded_duration(source: str | os.PathLike[str] | BinaryIO) -> float:
    """Seconds of audio in a recording file (a path, or a readable binary file object such as a decrypting
    reader), also one a crashed writer left behind (its STREAMINFO is kept current, see above). Blocking."""
    info = soundfile.info(source if not isinstance(source, os.PathLike) else os.fspath(source))
    return float(info.frames) / float(info.samplerate)


def restore_sample_count(source: BinaryIO, pwrite: Callable[[bytes, int], object]) -> int:
    """Crash recovery of a FLAC file a dead writer left: decode every frame that reached it (STREAMINFO may
    claim fewer: the writer updates the count only now and then) and store their number in STREAMINFO with
    ``pwrite(data, offset)``, so every reader sees all of them. A torn last frame is not counted. Returns the
    count; 0 (and nothing written) for a file that is not FLAC as this module writes it or holds no frame.
    Blocking."""
    source.seek(0)
    head = source.read(_TOTAL_SAMPLES_AT + 8)
    if len(head) < _TOTAL_SAMPLES_AT + 8 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return 0
    format_bits = int.from_bytes(head[_TOTAL_SAMPLES_AT:], "big") & ~_TOTAL_SAMPLES_MASK
    source.seek(0)
    total = 0
    try:
        with av.open(source, "r", format="flac") as container:
            for frame in container.decode(audio=0):
                total += frame.samples
    except (av.FFmpegError, EOFError) as exc:  # a frame cut short by the crash ends the count
        if not total:
            raise RuntimeError(f"no FLAC frame decodes: {exc}") from exc
    if total:
        pwrite((format_bits | (total & _TOTAL_SAMPLES_MASK)).to_bytes(8, "big"), _TOTAL_SAMPLES_AT)
    return total
