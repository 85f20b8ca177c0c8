"""Writing a sealed file: append as audio arrives, patch what is already on disk, finish at close.

A chunk is sealed and written as soon as it is full (the chunks one write fills go out with one system call);
the partial chunk at the end stays in memory until :meth:`SealedWriter.flush` (which writes it, not final) or
:meth:`SealedWriter.close` (which writes it as the final chunk). A write into a chunk already on disk
(libsndfile rewriting the FLAC STREAMINFO at close, the recorder updating the sample count) re-seals that chunk
in place under a fresh nonce. A process that dies before ``close()`` leaves a file without a final chunk (see
:func:`storage.sealed.finish_unfinished`).

Each flush seals the partial chunk again, whole: a file flushed often wants small chunks. The default
(:data:`~storage.sealed_format.DEFAULT_CHUNK_SIZE`, 16 KiB) is sized for a recording flushed once a second
(8 kHz stereo FLAC grows 10-16 KiB a second): a flush re-seals 8 KiB on average where 64 KiB chunks re-sealed
32, and the sample-count update re-seals a 16 KiB first chunk. The chunk size is in each file's header, so
readers take any.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from .sealed_format import (
    DEFAULT_CHUNK_SIZE,
    Header,
    aead_for,
    open_chunk,
    seal_chunk,
    sealed_size,
    seek_position,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, StrPath

__all__ = ["SealedWriter"]

_FILE_MODE = 0o640
_IOV_MAX = 512  # chunks per pwritev call, under Linux's IOV_MAX (1024)


class SealedWriter:
    """Writes a new sealed file at ``path`` (replacing any file there); random access like a regular file.

    Dropping an unclosed writer releases its descriptor but does not finish the file, exactly as a crash would
    leave it: only :meth:`close` writes the final chunk."""

    def __init__(self, path: StrPath, data_key: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self._aead = aead_for(data_key)
        self._header = Header.new(chunk_size)
        self._head = bytes(self._header)
        self._chunk_size = chunk_size
        self.name = os.fspath(path)
        self._fd = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _FILE_MODE)
        self._full = 0  # full chunks on disk, sealed not final
        self._tail = bytearray()  # plaintext of chunk `_full`, not yet full
        self._tail_on_disk = True  # the tail as it is now was written by flush() (or is empty)
        self._position = 0
        self._closed = False
        try:
            self._pwrite(self._head, 0)
        except BaseException:
            self._release()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def plaintext_size(self) -> int:
        return self._full * self._chunk_size + len(self._tail)

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        self._position = seek_position(self._position, self.plaintext_size, offset, whence)
        return self._position

    def write(self, data: ReadableBuffer) -> int:
        """Write at the current position (a gap past the end reads as zeros, as in a regular file)."""
        self._check_open()
        if self._position != self.plaintext_size:
            written = self.pwrite(data, self._position)
        else:  # appending, as an encoder streams out: no overlap with what is written
            view = memoryview(data).cast("B")
            written = len(view)
            if written:
                self._append(view)
        self._position += written
        return written

    def pwrite(self, data: ReadableBuffer, offset: int) -> int:
        """Write at ``offset`` without moving the position (``os.pwrite`` on the plaintext)."""
        self._check_open()
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        view = memoryview(data).cast("B")
        if not view:
            return 0
        size = self.plaintext_size
        if offset > size:
            self._append(memoryview(bytes(offset - size)))
            size = offset
        end = offset + len(view)
        if offset < size:
            self._overwrite(view[: min(end, size) - offset], offset)
        if end > size:
            self._append(view[size - offset :])
        return len(view)

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` plaintext octets at ``offset`` (``os.pread`` on the plaintext)."""
        self._check_open()
        end = min(offset + size, self.plaintext_size)
        sealed_end = self._full * self._chunk_size
        out = bytearray()
        while offset < end:
            if offset >= sealed_end:
                out += self._tail[offset - sealed_end : end - sealed_end]
                break
            index, within = divmod(offset, self._chunk_size)
            take = min(end - offset, self._chunk_size - within)
            out += self._read_full(index)[within : within + take]
            offset += take
        return bytes(out)

    def flush(self) -> None:
        """Write the partial chunk at the end, not final, so a crash after this loses nothing written."""
        self._check_open()
        if not self._tail_on_disk:
            self._store(self._full, self._tail, final=False)
            self._tail_on_disk = True

    def close(self) -> None:
        """Seal the last chunk as final (an empty file gets one empty final chunk); idempotent."""
        if self._closed:
            return
        try:
            if self._tail or not self._full:
                self._store(self._full, self._tail, final=True)
            else:  # ends on a chunk boundary: the last full chunk becomes the final one
                self._store(self._full - 1, self._read_full(self._full - 1), final=True)
            os.ftruncate(self._fd, sealed_size(self.plaintext_size, self._chunk_size))
        finally:
            self._release()

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._release()

    def __repr__(self) -> str:
        return f"SealedWriter({self.name!r}, size={self.plaintext_size}, closed={self._closed})"

    def _release(self) -> None:
        self._closed = True
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed SealedWriter")

    def _append(self, piece: memoryview) -> None:
        """Add ``piece`` at the end. The chunks it fills are sealed and written together; if that fails, the
        writer stands as before the call."""
        size = self._chunk_size
        room = size - len(self._tail)
        if len(piece) < room:
            self._tail += piece
            self._tail_on_disk = False
            return
        first = self._full
        sealed = []
        if self._tail:  # the partial chunk fills up
            sealed.append(self._seal(first, self._tail + piece[:room]))
            piece = piece[room:]
        while len(piece) >= size:
            sealed.append(self._seal(first + len(sealed), piece[:size]))
            piece = piece[size:]
        self._pwritev(sealed, first)
        self._full = first + len(sealed)
        self._tail = bytearray(piece)
        self._tail_on_disk = not piece

    def _overwrite(self, piece: memoryview, offset: int) -> None:
        size = self._chunk_size
        sealed_end = self._full * size
        while piece:
            if offset >= sealed_end:
                start = offset - sealed_end
                self._tail[start : start + len(piece)] = piece
                self._tail_on_disk = False
                return
            index, within = divmod(offset, size)
            take = min(len(piece), size - within)
            if take == size:
                self._store(index, piece[:take], final=False)
            else:
                plain = bytearray(self._read_full(index))
                plain[within : within + take] = piece[:take]
                self._store(index, plain, final=False)
            offset += take
            piece = piece[take:]

    def _read_full(self, index: int) -> bytes:
        sealed = os.pread(self._fd, self._header.stride, self._header.offset(index))
        return open_chunk(self._aead, self._head, index, False, sealed)

    def _seal(self, index: int, plaintext: bytes | bytearray | memoryview, *, final: bool = False) -> bytes:
        return seal_chunk(self._aead, self._head, index, final, plaintext)

    def _store(self, index: int, plaintext: bytes | bytearray | memoryview, *, final: bool) -> None:
        self._pwrite(self._seal(index, plaintext, final=final), self._header.offset(index))

    def _pwritev(self, sealed: list[bytes], first: int) -> None:
        """Write the consecutive sealed chunks ``first``, ``first + 1``, ... with as few calls as Linux allows."""
        for start in range(0, len(sealed), _IOV_MAX):
            group = sealed[start : start + _IOV_MAX]
            expected = sum(map(len, group))
            if os.pwritev(self._fd, group, self._header.offset(first + start)) != expected:
                raise OSError(f"short write to {self.name} (is the disk full?)")

    def _pwrite(self, data: bytes, offset: int) -> None:
        if os.pwrite(self._fd, data, offset) != len(data):
            raise OSError(f"short write to {self.name} (is the disk full?)")
