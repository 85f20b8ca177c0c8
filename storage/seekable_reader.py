"""The part every random-access reader of stored audio shares: a read-only, seekable raw file of known size.

Subclasses set ``_size`` and ``_position`` and implement ``readinto``; :class:`io.BufferedReader`, libsndfile
and PyAV then read them like any regular file (the sealed container's :class:`~storage.sealed.SealedReader`,
the object store's :class:`~storage.s3_reader.S3ObjectReader`).
"""

from __future__ import annotations

import io

from .sealed_format import seek_position

__all__ = ["SeekableReader"]


class SeekableReader(io.RawIOBase):
    _size: int
    _position: int

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        self._position = seek_position(self._position, self._size, offset, whence)
        return self._position

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on a closed {type(self).__name__}")
