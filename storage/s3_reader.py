"""A stored object as a synchronous, seekable, read-only binary file, fetched by ranges on demand.

Decoders (libsndfile through ``soundfile``, FFmpeg through PyAV) and :class:`~storage.sealed.SealedReader`
read small pieces and seek about; each miss fetches at least ``read_ahead`` octets from the current position,
so a sequential read costs one request per ``read_ahead`` and a seek to a new place one more. Reading blocks:
use a reader from a worker thread, never on the event loop its store runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .s3_errors import BlobStoreError
from .seekable_reader import SeekableReader

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["RangeFetch", "S3ObjectReader"]

RangeFetch = Callable[[int, int], bytes]
"""``fetch(start, end)``: octets ``start`` to ``end`` (exclusive) of the object; blocks."""


class S3ObjectReader(SeekableReader):
    """Reads an object of known ``size`` through ``fetch``; :class:`~storage.s3_errors.S3Error` when a
    request fails, :class:`~storage.s3_errors.BlobStoreError` when the object is shorter than ``size``."""

    def __init__(self, fetch: RangeFetch, *, size: int, name: str, read_ahead: int = 256 * 1024) -> None:
        super().__init__()
        if size < 0 or read_ahead < 1:
            raise ValueError(f"invalid reader size {size} or read-ahead {read_ahead}")
        self._fetch = fetch
        self._size = size
        self._read_ahead = read_ahead
        self.name = name
        self._position = 0
        self._buffer = b""
        self._buffer_start = 0

    @property
    def size(self) -> int:
        return self._size

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fills ``buffer`` up to the end of the object (never short before it)."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self._size:
            within = self._position - self._buffer_start
            if not 0 <= within < len(self._buffer):
                self._fill(len(view) - done)
                within = 0
            count = min(len(view) - done, len(self._buffer) - within)
            view[done : done + count] = self._buffer[within : within + count]
            done += count
            self._position += count
        return done

    def readall(self) -> bytes:
        """The rest of the object, in one request for what is not buffered."""
        self._check_open()
        if self._position >= self._size:
            return b""
        self._fill(self._size - self._position)
        data, self._position = self._buffer[self._position - self._buffer_start :], self._size
        return data

    def close(self) -> None:
        self._buffer = b""
        super().close()

    def __repr__(self) -> str:
        return f"S3ObjectReader({self.name!r}, size={self._size})"

    def _fill(self, wanted: int) -> None:
        start = self._position
        end = min(self._size, start + max(wanted, self._read_ahead))
        data = self._fetch(start, end)
        if len(data) != end - start:
            raise BlobStoreError(
                f"{self.name} holds fewer octets than expected: {len(data)} at {start} instead of {end - start}"
            )
        self._buffer, self._buffer_start = data, start
