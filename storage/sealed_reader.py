"""Reading a sealed file: seekable, every chunk verified before its plaintext is returned.

The sealed octets come from a file on disk (read with ``pread``) or from any seekable binary file object, such
as an object store's ranged reader (:meth:`storage.s3_store.S3Store.open_reader`)."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError
from .sealed_format import (
    HEADER_SIZE,
    OVERHEAD,
    Header,
    Tail,
    aead_for,
    open_chunk,
    split_body,
)
from .seekable_reader import SeekableReader

if TYPE_CHECKING:
    from _typeshed import StrPath, WriteableBuffer

__all__ = ["SealedReader", "SeekableSource", "locate_end", "read_chunk", "read_header"]


class SeekableSource(Protocol):
    """A seekable binary file object holding sealed octets (the reader seeks it; it never closes it)."""

    def seek(self, offset: int, whence: int = ..., /) -> int: ...

    def read(self, size: int = ..., /) -> bytes | None: ...


Source = int | SeekableSource  # a file descriptor, or a file object


def _pread(source: Source, size: int, offset: int) -> bytes:
    if isinstance(source, int):
        return os.pread(source, size, offset)
    source.seek(offset)
    data = bytearray()
    while len(data) < size and (piece := source.read(size - len(data))):  # raw files may read short
        data += piece
    return bytes(data)


def _size(source: Source) -> int:
    if isinstance(source, int):
        return os.fstat(source).st_size
    return source.seek(0, io.SEEK_END)


def read_header(fd: Source) -> Header:
    return Header.parse(_pread(fd, HEADER_SIZE, 0))


def read_chunk(fd: Source, aead: AESGCM, header: Header, index: int, length: int, final: bool) -> bytes:
    expected = OVERHEAD + length
    sealed = _pread(fd, expected, header.offset(index))
    if len(sealed) != expected:
        raise IntegrityError(f"chunk {index} is cut short: the file shrank while it was read")
    return open_chunk(aead, bytes(header), index, final, sealed)


def locate_end(fd: Source, aead: AESGCM, header: Header, allow_unfinished: bool) -> tuple[int, int, bool]:
    """(chunks to read, plaintext octets in the last, finished) after checking how the file ends."""
    count, last_length, tail = split_body(_size(fd), header)
    if tail is Tail.CHUNK and count:
        try:
            read_chunk(fd, aead, header, count - 1, last_length, True)
            return count, last_length, True
        except IntegrityError:
            if not allow_unfinished:
                raise IntegrityError(
                    "the last chunk does not verify as the final chunk: the file was truncated or changed, "
                    "its writer never closed it, or the key is wrong"
                ) from None
    elif not allow_unfinished:
        raise IntegrityError("the file ends without a final chunk: truncated, or its writer never closed it")
    # Unfinished: what a writer left on disk. Its last chunk may be torn (a short write); drop at most that.
    candidates = [(count - 1, last_length)]
    if tail is Tail.CHUNK:
        candidates.append((count - 2, header.chunk_size))
    for index, length in candidates:
        if index < 0:
            return 0, 0, False
        try:
            read_chunk(fd, aead, header, index, length, False)
            return index + 1, length, False
        except IntegrityError:
            continue
    raise IntegrityError("the unfinished file is damaged before its last chunk")


class SealedReader(SeekableReader):
    """Reads the plaintext of a sealed file (a path, or a seekable file object the caller keeps and closes);
    seekable. :class:`IntegrityError` on any chunk that does not verify, and at opening when the file does not
    end with its final chunk (unless ``allow_unfinished``)."""

    def __init__(
        self, path: StrPath | SeekableSource, data_key: bytes, *, allow_unfinished: bool = False
    ) -> None:
        super().__init__()
        self._fd: Source = -1
        aead = aead_for(data_key)
        fd: Source
        if isinstance(path, str | os.PathLike):
            self.name = os.fspath(path)
            fd = os.open(self.name, os.O_RDONLY | os.O_CLOEXEC)
        else:
            self.name = str(getattr(path, "name", repr(path)))
            fd = path
        try:
            header = read_header(fd)
            chunks, last_length, finished = locate_end(fd, aead, header, allow_unfinished)
        except BaseException:
            if isinstance(fd, int):
                os.close(fd)
            raise
        self._fd = fd
        self._aead = aead
        self._header = header
        self._chunks = chunks
        self._last_length = last_length
        self._finished = finished
        self._size = max(0, chunks - 1) * header.chunk_size + last_length
        self._position = 0
        self._cached_index = -1
        self._cached = b""
        self._integrity_error: IntegrityError | None = None

    @property
    def integrity_error(self) -> IntegrityError | None:
        """The first chunk that failed verification, for callers whose decoder swallowed the exception."""
        return self._integrity_error

    @property
    def plaintext_size(self) -> int:
        return self._size

    @property
    def finished(self) -> bool:
        """False for a file its writer never closed (read with ``allow_unfinished``)."""
        return self._finished

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fills ``buffer`` up to the end of the plaintext (never short before it)."""
        self._check_open()
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self._size:
            index, within = divmod(self._position, self._header.chunk_size)
            plain = self._chunk(index)
            count = min(len(view) - done, len(plain) - within)
            view[done : done + count] = plain[within : within + count]
            done += count
            self._position += count
        return done

    def close(self) -> None:
        fd, self._fd = getattr(self, "_fd", -1), -1
        if isinstance(fd, int) and fd >= 0:
            os.close(fd)
        super().close()

    def __repr__(self) -> str:
        return f"SealedReader({self.name!r}, size={self._size}, finished={self._finished})"

    def _chunk(self, index: int) -> bytes:
        if index != self._cached_index:
            last = index == self._chunks - 1
            length = self._last_length if last else self._header.chunk_size
            try:
                self._cached = read_chunk(
                    self._fd, self._aead, self._header, index, length, last and self._finished
                )
            except IntegrityError as exc:
                self._integrity_error = self._integrity_error or exc
                raise
            self._cached_index = index
        return self._cached
