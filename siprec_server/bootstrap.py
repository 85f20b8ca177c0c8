"""Opening the catalogue the same way for the server and the CLI: embedded or external PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from storage import Catalogue, EmbeddedDatabase, FileBlobStore, migrate, open_pool
from storage.s3_config import S3Observer
from storage.s3_store import S3Store

from .config import Config

__all__ = ["StorageHandles", "open_storage"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageHandles:
    pool: asyncpg.Pool
    catalogue: Catalogue
    blobs: FileBlobStore  # reads the object store too when one is configured
    objects: (
        S3Store | None
    )  # the object store ([s3] bucket), open on this event loop; None: files stay on disk
    dsn_kind: str  # "embedded" or "external", for logs (never the DSN itself: it may hold a password)
    dsn: str


@asynccontextmanager
async def open_storage(
    config: Config, *, observe_s3: S3Observer | None = None
) -> AsyncIterator[StorageHandles]:
    """Start (or join) the database, apply migrations, open the object store when one is configured, and yield
    the catalogue; stop what we started. ``observe_s3`` sees every S3 request (metrics)."""
    settings = config.s3
    objects = None if settings is None else S3Store(settings, observe=observe_s3)
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
            if objects is not None:
                await objects.open()
            yield StorageHandles(
                pool=pool,
                catalogue=Catalogue(pool),
                blobs=FileBlobStore(config.recordings_dir, remote=objects),
                objects=objects,
                dsn_kind="embedded" if embedded else "external",
                dsn=dsn,
            )
        finally:
            if objects is not None:
                await objects.aclose()
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
