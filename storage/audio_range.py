"""A stretch of a recording's audio: its plaintext read a byte range at a time, decrypted on the fly.

The bytes served are the audio itself (what ``recordings.sha256`` hashes and ``hangtar recordings export``
writes), whatever is on disk: the :data:`~storage.audio_opener.AudioOpener` decrypts a sealed file, whose
chunked AES-GCM container seeks to any offset and verifies only the chunks it reads
(:mod:`storage.sealed_reader`). So a player's range request costs a chunk or two, not the whole file.

Byte ranges follow RFC 9110 §14: :func:`parse_range` reads a ``Range`` header against the audio's length.
Everything here blocks: open and read from a worker thread.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

from .audio_opener import AudioOpener
from .models import Recording

__all__ = [
    "CONTENT_TYPES",
    "READ_SIZE",
    "AudioStream",
    "ByteRange",
    "RangeNotSatisfiableError",
    "content_type",
    "file_extension",
    "open_audio",
    "parse_range",
]

# The stored formats (recording policies: flac, wav, opus, mp3) and their media types (RFC 9639 audio/flac,
# RFC 2361 audio/wav, RFC 7845 §9 audio/ogg for Ogg Opus, RFC 3003 audio/mpeg).
CONTENT_TYPES = {"flac": "audio/flac", "wav": "audio/wav", "opus": "audio/ogg", "mp3": "audio/mpeg"}
_FALLBACK_TYPE = "application/octet-stream"
READ_SIZE = 1 << 18  # four chunks of a sealed file
# RFC 9110 §14.1.1: ranges-specifier = range-unit "=" range-set; the unit is case-insensitive.
_RANGES = re.compile(r"^\s*bytes\s*=\s*(.+)$", re.IGNORECASE)
_SPEC = re.compile(r"^(\d*)-(\d*)$")


def content_type(format: str | None) -> str:
    return CONTENT_TYPES.get((format or "").lower(), _FALLBACK_TYPE)


def file_extension(format: str | None) -> str:
    """The usual file name extension of a stored format (``flac``, ``wav``, ``opus``, ``mp3``)."""
    name = (format or "").lower()
    return name if name in CONTENT_TYPES else "bin"


class RangeNotSatisfiableError(ValueError):
    """No range of the request lies within the audio (RFC 9110 §15.5.17: answer 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested range lies outside the audio's {size} bytes")
        self.size = size


@dataclass(frozen=True, slots=True, kw_only=True)
class ByteRange:
    """Octets ``start`` to ``end`` inclusive (RFC 9110 §14.1.2 first-pos and last-pos)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"byte range {self.start}-{self.end} is not one")

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The ``Content-Range`` of a 206 response (RFC 9110 §14.4)."""
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve of ``size`` octets, or None to serve them all.

    RFC 9110 §14.2: a server may ignore a ``Range`` field, so None for no field, another unit, an invalid
    range set (a last-pos before its first-pos, garbage) and a request for several ranges (answered whole
    rather than as multipart/byteranges). A last-pos past the end is cut to the end (§14.1.2); a suffix range
    ``-N`` is the last N octets. :class:`RangeNotSatisfiableError` when the single range starts at or after
    the end, or is ``-0`` (§14.1.3)."""
    if header is None:
        return None
    ranges = _RANGES.match(header)
    if ranges is None:
        return None
    specs = [spec.strip() for spec in ranges.group(1).split(",") if spec.strip()]
    if len(specs) != 1:
        return None
    spec = _SPEC.match(specs[0])
    if spec is None or spec.group(0) == "-":
        return None
    first, last = spec.group(1), spec.group(2)
    if not first:  # suffix-range
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError(size)
        return ByteRange(start=max(0, size - suffix), end=size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid (§14.1.1): ignored
    if start >= size:
        raise RangeNotSatisfiableError(size)
    end = size - 1 if not last else min(int(last), size - 1)
    return ByteRange(start=start, end=end)


class AudioStream:
    """An open recording's audio; seeks and reads the plaintext. Close it (or use ``with``)."""

    def __init__(self, source: BinaryIO, *, content_type: str, closer: contextlib.ExitStack) -> None:
        self._source = source
        self._closer = closer
        self.content_type = content_type
        self.size = source.seek(0, io.SEEK_END)

    def read(self, start: int, length: int) -> bytes:
        """Up to ``length`` octets from ``start`` (fewer only at the end of the audio)."""
        if start < 0 or length < 0:
            raise ValueError("cannot read before the start of the audio")
        self._source.seek(start)
        return self._source.read(length)

    def pieces(self, byte_range: ByteRange | None = None, *, read_size: int = READ_SIZE) -> Iterator[bytes]:
        """The octets of ``byte_range`` (all of the audio by default) in pieces of at most ``read_size``."""
        start, end = (0, self.size - 1) if byte_range is None else (byte_range.start, byte_range.end)
        position = start
        while position <= end:
            piece = self.read(position, min(read_size, end + 1 - position))
            if not piece:
                raise OSError(f"the audio ended at {position} of {self.size} bytes: it changed while read")
            position += len(piece)
            yield piece

    def close(self) -> None:
        self._closer.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_audio(opener: AudioOpener, recording: Recording) -> AudioStream:
    """Open the recording's audio through ``opener`` (which decrypts a sealed file). Blocking.

    :class:`FileNotFoundError` when it has no audio file; :class:`~storage.errors.KeyUnavailableError` when
    its data key was destroyed (crypto-shredded) or cannot be unwrapped; :class:`~storage.errors.IntegrityError`
    when the sealed file does not verify."""
    if not recording.file_path:
        raise FileNotFoundError(f"recording {recording.reference} has no audio file")
    stack = contextlib.ExitStack()
    try:
        source = stack.enter_context(opener(recording))
        return AudioStream(source, content_type=content_type(recording.format), closer=stack)
    except BaseException:
        stack.close()
        raise
