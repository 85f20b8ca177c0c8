"""Recording files on the local filesystem, sharded by the UTC day the recording started.

Layout: `<root>/YYYY/MM/DD/<recording uuid>.<ext>`. The media layer writes a recording in place at the path
this store hands out; the store then hashes, measures and serves it. Every method takes a path inside the
root (absolute, or relative to the root) and refuses any other, so a path read from the catalogue can never
reach outside the recordings directory. All methods block: run them in a thread from async code.

With an object store (``remote``), the local directory holds what is being recorded or waits for its upload,
and the object store the rest, under the same relative name (:meth:`FileBlobStore.key_for`): the readers here
read the local file while there is one and the object otherwise, so every service reads a recording the same
way wherever it lies.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from uuid import UUID

__all__ = ["FileBlobStore", "RemoteObjects"]

_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
_CHUNK = 1 << 20


class RemoteObjects(Protocol):
    """The object store as the blob store reads it (:class:`storage.s3_store.S3Store`); both methods block."""

    def open_object(self, key: str) -> BinaryIO:
        """A seekable reader over the object; ``FileNotFoundError`` when there is none."""
        ...

    def object_size(self, key: str) -> int | None:
        """The object's size; None when there is none."""
        ...


class FileBlobStore:
    def __init__(self, root: Path, *, remote: RemoteObjects | None = None) -> None:
        self._root = Path(root).absolute()
        self._remote = remote

    @property
    def root(self) -> Path:
        return self._root

    @property
    def remote(self) -> RemoteObjects | None:
        return self._remote

    def key_for(self, path: Path | str) -> str:
        """The name of ``path`` relative to the root (``2026/11/29/<uuid>.flac.sealed``): its object key, and
        what the catalogue names once the file has left this node's disk."""
        return self.resolve(path).relative_to(self._root.resolve()).as_posix()

    def exists(self, path: Path | str) -> bool:
        """Whether the file is on disk or, failing that, in the object store."""
        resolved = self.resolve(path)
        if resolved.is_file():
            return True
        return self._remote is not None and self._remote.object_size(self.key_for(resolved)) is not None

    def path_for(self, recording_id: UUID, started_at: datetime, ext: str) -> Path:
        """Where the recording's file goes; its day directory is created."""
        if started_at.utcoffset() is None:
            raise ValueError("started_at must be timezone-aware")
        extension = ext.removeprefix(".").lower()
        if not _EXTENSION.match(extension):
            raise ValueError(f"unusable file extension {ext!r}")
        day = started_at.astimezone(UTC)
        directory = self._root / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{recording_id}.{extension}"

    def sha256(self, path: Path | str) -> str:
        """Hex SHA-256 of the file, read in 1 MiB chunks."""
        digest = hashlib.sha256()
        with self.open_read(path) as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def size(self, path: Path | str) -> int:
        resolved = self.resolve(path)
        try:
            return resolved.stat().st_size
        except FileNotFoundError:
            if self._remote is None:
                raise
            size = self._remote.object_size(self.key_for(resolved))
            if size is None:
                raise
            return size

    def open_read(self, path: Path | str) -> BinaryIO:
        """The file on disk, else its object (a seekable reader that fetches ranges); ``FileNotFoundError``
        when neither exists."""
        resolved = self.resolve(path)
        try:
            return resolved.open("rb")
        except FileNotFoundError:
            if self._remote is None:
                raise
            return self._remote.open_object(self.key_for(resolved))

    def remove(self, path: Path | str) -> int:
        """Delete the file; the bytes it freed, 0 when it was already gone (an earlier attempt removed it)."""
        resolved = self.resolve(path)
        try:
            size = resolved.stat().st_size
            resolved.unlink()
        except FileNotFoundError:
            return 0
        return size

    def resolve(self, path: Path | str) -> Path:
        """The absolute, resolved path of ``path`` (relative ones are read from the root); ``ValueError`` when it
        lies outside the root, through ``..`` or a symbolic link included. Checks names only: the file need not
        exist."""
        candidate = self._root / path  # an absolute path replaces the root here
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self._root.resolve()):
            raise ValueError(f"{path} is outside the recordings directory {self._root}")
        return resolved
