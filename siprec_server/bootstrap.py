"""Opening the catalogue the same way for the server and the CLI: embedded or external PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from storage import Catalogue, EmbeddedDatabase, FileBlobStore, migrate, open_pool

from .config import Config

__all__ = ["StorageHandles", "open_storage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageHandles:
    pool: asyncpg.Pool
    catalogue: Catalogue
    blobs: FileBlobStore
    dsn_kind: str  # "embedded" or "external", for logs (never the DSN itself: it may hold a password)
    dsn: str


@asynccontextmanager
async def open_storage(config: Config) -> AsyncIterator[StorageHandles]:
    """Start (or join) the database, apply migrations, and yield the catalogue; stop what we started."""
    embedded: EmbeddedDatabase | None = None
    dsn = config.database_dsn
    if not dsn:
        embedded = EmbeddedDatabase(config.data_dir)
        dsn = await asyncio.to_thread(embedded.start)
    try:
        pool = await open_pool(dsn)
        try:
            applied = await migrate(pool)
            for name in applied:
                log.info("applied database migration %s", name)
            yield StorageHandles(
                pool=pool,
                catalogue=Catalogue(pool),
                blobs=FileBlobStore(config.recordings_dir),
                dsn_kind="embedded" if embedded else "external",
                dsn=dsn,
            )
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
