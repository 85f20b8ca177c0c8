"""Per-recording data keys, stored only wrapped by their tenant's key (GUIDE §3, GDPR Art. 32(1)(a)).

Every recording gets a random AES-256 data key that encrypts its files (:mod:`storage.sealed`). The catalogue
keeps the key only in wrapped form (``recording_keys``), made by a :class:`KeyProvider` that holds the tenant
keys: the key file of a single node (:class:`~storage.keyfile.KeyFileProvider`) today, a KMS or HSM later.
Destroying the wrapped key (crypto-shredding) makes every copy of the recording's files unreadable, backups
of the media included. The row stays as a tombstone (wrapped NULL, ``destroyed_at``), so the recording can
never be given a new key.

Provider calls run in a worker thread: a provider may block (file locks now, network calls to a KMS later).
These methods do not write audit entries: the service acting on the recording (export, erasure, sweep) does,
in the same transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CatalogueError, KeyUnavailableError, NotFoundError, translated
from .keyfile import KeyFileProvider

__all__ = ["KeyFileProvider", "KeyProvider", "RecordingKeys"]


class KeyProvider(Protocol):
    """Holds the key-encryption keys; a tenant of ``None`` means the calls no tenant claims."""

    def key_ref(self, tenant_id: UUID | None) -> str:
        """Which key wraps the tenant's data keys now: ``"<provider>:<key id>"``."""
        ...

    def wrap(self, tenant_id: UUID | None, data_key: bytes) -> tuple[str, bytes]:
        """(key reference, wrapped data key) under the tenant's current key."""
        ...

    def unwrap(self, key_ref: str, wrapped: bytes) -> bytes:
        """The data key; :class:`~storage.errors.KeyUnavailableError` if it cannot be had."""
        ...


class RecordingKeys:
    """The ``recording_keys`` table. Each method touches one recording's row, of the tenant named."""

    def __init__(
        self, pool: Any, provider: KeyProvider, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._pool = pool
        self._provider = provider
        self._clock = clock

    async def create(self, conn: Any, recording_id: UUID, tenant_id: UUID | None) -> bytes:
        """A new random data key for the recording, stored wrapped through ``conn`` (a connection, perhaps in
        the caller's transaction with the recording's row, or a pool); returns the plain key for the writer."""
        data_key = AESGCM.generate_key(bit_length=256)
        key_ref, wrapped = await asyncio.to_thread(self._provider.wrap, tenant_id, data_key)
        with translated("store the recording's data key"):
            try:
                await conn.execute(
                    """
                    INSERT INTO recording_keys (recording_id, tenant_id, key_ref, wrapped, created_at)
                    VALUES ($1, $2, $3, $4, $5)
                    """,
                    recording_id,
                    tenant_id,
                    key_ref,
                    wrapped,
                    self._clock(),
                )
            except asyncpg.UniqueViolationError:
                raise CatalogueError(
                    f"recording {recording_id} already has a data key (or had one, destroyed)"
                ) from None
        return data_key

    async def get(self, recording_id: UUID, *, tenant_id: UUID | None) -> bytes:
        """The recording's plain data key. :class:`KeyUnavailableError` if it has none or it was destroyed;
        :class:`NotFoundError` if the recording belongs to another tenant (``None``: the calls no tenant
        claims)."""
        with translated("read the recording's data key"):
            row = await self._pool.fetchrow(
                "SELECT tenant_id, key_ref, wrapped, destroyed_at FROM recording_keys WHERE recording_id = $1",
                recording_id,
            )
        if row is None:
            raise KeyUnavailableError(f"recording {recording_id} has no data key")
        if row["tenant_id"] != tenant_id:
            raise NotFoundError(f"recording {recording_id} has no data key for this tenant")
        if row["wrapped"] is None:
            raise KeyUnavailableError(
                f"the data key of recording {recording_id} was destroyed at {row['destroyed_at'].isoformat()}"
            )
        return await asyncio.to_thread(self._provider.unwrap, row["key_ref"], bytes(row["wrapped"]))

    async def destroy(self, conn: Any, recording_id: UUID, *, tenant_id: UUID | None) -> bool:
        """Crypto-shred: forget the wrapped key, keeping the row as a tombstone. True if this call destroyed
        it; False if it was destroyed before or the recording never had one (a plain file).
        :class:`NotFoundError` if the recording belongs to another tenant."""
        with translated("destroy the recording's data key"):
            row = await conn.fetchrow(
                "SELECT tenant_id, wrapped FROM recording_keys WHERE recording_id = $1 FOR UPDATE",
                recording_id,
            )
            if row is None:
                return False
            if row["tenant_id"] != tenant_id:
                raise NotFoundError(f"recording {recording_id} has no data key for this tenant")
            if row["wrapped"] is None:
                return False
            await conn.execute(
                "UPDATE recording_keys SET wrapped = NULL, destroyed_at = $2 WHERE recording_id = $1",
                recording_id,
                self._clock(),
            )
        return True
