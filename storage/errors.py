"""Domain errors raised by the storage package; database driver errors never escape it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg  # type: ignore[import-untyped,unused-ignore]

__all__ = [
    "CatalogueError",
    "EmbeddedDatabaseError",
    "MigrationError",
    "RecordingNotFoundError",
    "StorageError",
    "translated",
]


class StorageError(Exception):
    """Base of every error the storage package raises on purpose."""


class EmbeddedDatabaseError(StorageError):
    """The embedded PostgreSQL could not be initialised, started, reached or stopped."""


class CatalogueError(StorageError):
    """The catalogue database refused or failed an operation (driver errors are wrapped in this)."""


class MigrationError(CatalogueError):
    """A schema migration is malformed, failed, or differs from the one already applied."""


class RecordingNotFoundError(CatalogueError):
    """An update named a recording id that is not in the catalogue."""


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn a database or connection failure inside the block into a :class:`CatalogueError` naming ``action``."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise CatalogueError(f"cannot {action}: {exc}") from exc
