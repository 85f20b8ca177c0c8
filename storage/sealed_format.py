"""The sealed container, format version 1: AES-256-GCM over fixed-size chunks of a file.

Layout (integers big-endian)::

    header   32 octets   magic "HTSEALED" (8) | version u16 = 1 | reserved u16 = 0 | chunk size u32 |
                         file id (16 random octets)
    chunk i  at HEADER_SIZE + i * (12 + chunk size + 16):
                         nonce (12 random octets) | ciphertext (chunk size octets; fewer in the last chunk) |
                         GCM tag (16)
    AAD of chunk i       the 32 header octets | i as u64 | final flag u8

Invariants of a finished file: it has at least one chunk; every chunk but the last holds exactly
``chunk size`` plaintext octets; the last one (empty only when the whole file is) carries the final flag and
no other does. The AAD ties each chunk to its file (the random file id), its place (the index) and the end of
the stream (the flag), so a reordered, swapped, spliced or dropped chunk, a changed header, or a file cut at a
chunk boundary all fail GCM verification (NIST SP 800-38D §7.2). Nonces are random, 96 bits, fresh for every
sealing of a chunk, including re-sealing after an in-place update (§8.2.2: far below 2**32 per key here).

This module only computes; the reader and writer in :mod:`storage.sealed` do the file I/O.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "KEY_SIZE",
    "MAGIC",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "SEALED_FORMAT",
    "TAG_SIZE",
    "VERSION",
    "Header",
    "Tail",
    "aead_for",
    "open_chunk",
    "seal_chunk",
    "sealed_size",
    "seek_position",
    "split_body",
]

SEALED_FORMAT = "aes-256-gcm-chunked-v1"  # what `recordings.encryption` says of a file in this format
MAGIC = b"HTSEALED"
VERSION = 1
KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
# The chunk size of new files. A recording is flushed every second, each flush sealing its partial last chunk
# again whole, so small chunks cost less; files written with the former 64 KiB name it in their header.
DEFAULT_CHUNK_SIZE = 16384
MIN_CHUNK_SIZE = 16
MAX_CHUNK_SIZE = 1 << 24
FILE_ID_SIZE = 16

_HEADER = struct.Struct(">8sHHI16s")
HEADER_SIZE = _HEADER.size  # 32
_INDEX = struct.Struct(">QB")


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    chunk_size: int
    file_id: bytes
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise ValueError(f"only sealed format version {VERSION} is supported, not {self.version}")
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk size must be {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}, not {self.chunk_size}"
            )
        if len(self.file_id) != FILE_ID_SIZE:
            raise ValueError(f"a file id has {FILE_ID_SIZE} octets")

    @classmethod
    def new(cls, chunk_size: int) -> Header:
        return cls(chunk_size=chunk_size, file_id=os.urandom(FILE_ID_SIZE))

    @classmethod
    def parse(cls, data: bytes) -> Header:
        """The header at the start of ``data``; :class:`IntegrityError` if it is not one this code wrote."""
        if len(data) < HEADER_SIZE:
            raise IntegrityError("the file is shorter than a sealed header: not a sealed file, or truncated")
        magic, version, reserved, chunk_size, file_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise IntegrityError("the file does not start with the sealed container's magic")
        if reserved != 0:
            raise IntegrityError("the sealed header's reserved field is not zero: the header was changed")
        try:
            return cls(chunk_size=chunk_size, file_id=file_id, version=version)
        except ValueError as exc:
            raise IntegrityError(f"unusable sealed header: {exc}") from exc

    def __bytes__(self) -> bytes:
        return _HEADER.pack(MAGIC, self.version, 0, self.chunk_size, self.file_id)

    @property
    def stride(self) -> int:
        """Octets on disk of a full chunk."""
        return OVERHEAD + self.chunk_size

    def offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the file."""
        return HEADER_SIZE + index * self.stride


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + _INDEX.pack(index, 1 if final else 0)


def seal_chunk(
    aead: AESGCM, header: bytes, index: int, final: bool, plaintext: bytes | bytearray | memoryview
) -> bytes:
    """Nonce, ciphertext and tag of one chunk, as written to disk (``header`` is the header's 32 octets)."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce + aead.encrypt(nonce, plaintext, _aad(header, index, final))


def open_chunk(aead: AESGCM, header: bytes, index: int, final: bool, sealed: bytes) -> bytes:
    """The plaintext of one chunk; :class:`IntegrityError` unless it verifies at this place in this file."""
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"chunk {index} is cut short")
    try:
        return aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _aad(header, index, final))
    except InvalidTag:
        state = "final" if final else "non-final"
        raise IntegrityError(
            f"chunk {index} does not verify as the {state} chunk of this file: it was changed, moved or "
            "taken from another file, or the key is wrong"
        ) from None


class Tail(Enum):
    """How the file's bytes after the header end."""

    CHUNK = "chunk"  # the last octets form a chunk (full, or a short last one)
    TORN = "torn"  # fewer trailing octets than a chunk's nonce and tag: a write cut short


def split_body(file_size: int, header: Header) -> tuple[int, int, Tail]:
    """(chunks present, plaintext octets of the last one, how the file ends) for a file of ``file_size``.

    With a torn tail, the count covers only the whole chunks before it."""
    full, rest = divmod(file_size - HEADER_SIZE, header.stride)
    if rest == 0:
        return full, header.chunk_size if full else 0, Tail.CHUNK
    if rest >= OVERHEAD:
        return full + 1, rest - OVERHEAD, Tail.CHUNK
    return full, header.chunk_size if full else 0, Tail.TORN


def sealed_size(plaintext_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Octets on disk of a finished file holding ``plaintext_size`` octets."""
    chunks = max(1, -(-plaintext_size // chunk_size))
    return HEADER_SIZE + chunks * OVERHEAD + plaintext_size


def aead_for(data_key: bytes) -> AESGCM:
    if len(data_key) != KEY_SIZE:
        raise ValueError(f"a data key has {KEY_SIZE} octets (AES-256), not {len(data_key)}")
    return AESGCM(data_key)


def seek_position(current: int, size: int, offset: int, whence: int) -> int:
    if whence == io.SEEK_SET:
        position = offset
    elif whence == io.SEEK_CUR:
        position = current + offset
    elif whence == io.SEEK_END:
        position = size + offset
    else:
        raise ValueError(f"invalid whence ({whence})")
    if position < 0:
        raise ValueError(f"negative seek position {position}")
    return position
