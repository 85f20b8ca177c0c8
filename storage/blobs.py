"""Recording files on the local filesystem, sharded by the UTC day the recording started.

Layout: `<root>/YYYY/MM/DD/<recording uuid>.<ext>`. The media layer writes a recording in place at the path
this store hands out; the store then hashes, measures and serves it. Every method takes a path inside the
root (absolute, or relative to the root) and refuses any other, so a path read from the catalogue can never
reach outside the recordings directory. All methods block: run them in a thread from async code.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

__all__ = ["FileBlobStore"]

_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
_CHUNK = 1 << 20


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self._root = Path(root).absolute()

    @property
    def root(self) -> Path:
        return self._root

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
        return self.resolve(path).stat().st_size

    def open_read(self, path: Path | str) -> BinaryIO:
        return self.resolve(path).open("rb")

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
