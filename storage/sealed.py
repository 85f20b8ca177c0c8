"""Recording files encrypted at rest: a writer to append and patch them, a seekable reader, crash recovery.

The container format (AES-256-GCM in fixed-size chunks, each bound to its file, place and the end of the
stream) is specified in :mod:`storage.sealed_format`. Both classes are binary file-like objects that
libsndfile (``soundfile.SoundFile(obj, ...)``) and FFmpeg (``av.open(obj)``) accept, so audio is encoded
straight into the encrypted file and decoded straight out of it: no plaintext ever reaches the disk.

Writing (:mod:`storage.sealed_writer`): full chunks go to disk as soon as they fill, so a crash loses at most
the partial chunk since the last ``flush()``; a process that dies before ``close()`` leaves a file without a
final chunk: strict readers refuse it, ``allow_unfinished=True`` reads what was written, and
:func:`finish_unfinished` turns it into a finished file.

Every chunk is verified before any of its plaintext is returned. PyAV re-raises the
:class:`~storage.errors.IntegrityError` of a damaged chunk; ``soundfile`` cannot (libsndfile's I/O callbacks
swallow exceptions and it fails with its own error), so after a failed read through it look at
:attr:`SealedReader.integrity_error`, and check whole files with :func:`verify_sealed`.

Durability is against process crashes, not power loss: nothing is fsynced. All of this blocks: keep it off
the event loop.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .sealed_format import (
    DEFAULT_CHUNK_SIZE,
    MAGIC,
    OVERHEAD,
    SEALED_FORMAT,
    aead_for,
    seal_chunk,
    sealed_size,
)
from .sealed_reader import SealedReader, locate_end, read_chunk, read_header
from .sealed_writer import SealedWriter

if TYPE_CHECKING:
    from _typeshed import StrPath

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "SEALED_FORMAT",
    "SealedReader",
    "SealedWriter",
    "finish_unfinished",
    "is_sealed",
    "open_plain",
    "open_plain_file",
    "patch_sealed",
    "seal_file",
    "sealed_size",
    "verify_sealed",
]


def verify_sealed(path: StrPath, data_key: bytes) -> int:
    """Check every chunk of a finished sealed file; its plaintext size, or :class:`IntegrityError`."""
    with SealedReader(path, data_key) as reader:
        buffer = bytearray(1 << 20)
        while reader.readinto(buffer):
            pass
        return reader.plaintext_size


def finish_unfinished(path: StrPath, data_key: bytes) -> int:
    """Make a file whose writer died a finished one: drop a torn trailing chunk and re-seal the last complete
    chunk as final. A finished file is left as it is. Returns the plaintext size. Crash recovery at start-up."""
    aead = aead_for(data_key)
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CLOEXEC)
    try:
        header = read_header(fd)
        chunks, last_length, finished = locate_end(fd, aead, header, True)
        size = max(0, chunks - 1) * header.chunk_size + last_length
        if finished:
            return size
        index = max(0, chunks - 1)
        os.ftruncate(fd, header.offset(index) + OVERHEAD + last_length)  # a torn chunk, if any, goes first
        plain = read_chunk(fd, aead, header, index, last_length, False) if chunks else b""
        sealed = seal_chunk(aead, bytes(header), index, True, plain)
        if os.pwrite(fd, sealed, header.offset(index)) != len(sealed):
            raise OSError(f"short write to {path} (is the disk full?)")
        return size
    finally:
        os.close(fd)


def patch_sealed(path: StrPath, data_key: bytes, data: bytes, offset: int) -> None:
    """Overwrite plaintext octets of a sealed file in place, finished or not (crash recovery correcting a
    header the writer left); the octets must lie in one chunk that is on disk. The chunk is re-sealed under
    a fresh nonce, keeping whether it is the final one."""
    aead = aead_for(data_key)
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CLOEXEC)
    try:
        header = read_header(fd)
        chunks, last_length, finished = locate_end(fd, aead, header, True)
        index, within = divmod(offset, header.chunk_size)
        last = index == chunks - 1
        length = last_length if last else header.chunk_size
        if index >= chunks or within + len(data) > length:
            raise ValueError(f"octets {offset}-{offset + len(data)} are not within one chunk of {path}")
        final = last and finished
        plain = bytearray(read_chunk(fd, aead, header, index, length, final))
        plain[within : within + len(data)] = data
        sealed = seal_chunk(aead, bytes(header), index, final, plain)
        if os.pwrite(fd, sealed, header.offset(index)) != len(sealed):
            raise OSError(f"short write to {path} (is the disk full?)")
    finally:
        os.close(fd)


def seal_file(
    source: StrPath, destination: StrPath, data_key: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> int:
    """Encrypt a plain file into a new sealed file (removed again if this fails); the plaintext size."""
    try:
        with (
            Path(source).open("rb") as plain,
            SealedWriter(destination, data_key, chunk_size=chunk_size) as out,
        ):
            while piece := plain.read(max(chunk_size, 1 << 20)):
                out.write(piece)
            return out.plaintext_size
    except BaseException:
        Path(destination).unlink(missing_ok=True)
        raise


def open_plain(path: StrPath, data_key: bytes | None) -> BinaryIO:
    """The plaintext of a recording file: a sealed file decrypted with ``data_key``, or, with ``None``, a
    plain file (recordings made before encryption) as it is."""
    if data_key is None:
        return Path(path).open("rb")
    return io.BufferedReader(SealedReader(path, data_key), buffer_size=DEFAULT_CHUNK_SIZE)


def open_plain_file(source: BinaryIO, data_key: bytes | None) -> BinaryIO:
    """:func:`open_plain` over an open, seekable file (an object store's reader); closing the result closes
    ``source`` too."""
    if data_key is None:
        return source
    try:
        reader = _OwningSealedReader(source, data_key)
    except BaseException:
        source.close()
        raise
    return io.BufferedReader(reader, buffer_size=DEFAULT_CHUNK_SIZE)


class _OwningSealedReader(SealedReader):
    def __init__(self, source: BinaryIO, data_key: bytes) -> None:
        super().__init__(source, data_key)
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()


def is_sealed(path: StrPath) -> bool:
    """Whether the file starts like a sealed container (it says nothing of whether it verifies)."""
    with Path(path).open("rb") as file:
        return file.read(len(MAGIC)) == MAGIC
