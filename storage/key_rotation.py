"""Rotating a tenant's key-encryption key and re-wrapping its recordings' data keys (GDPR Art. 32(1)(a)).

A rotation adds a new version of the tenant's key (``KeyFileProvider.rotate``): new recordings are wrapped by
it from then on, and older versions keep unwrapping the data keys they wrapped. Re-wrapping moves those older
data keys to the current version, so an old version that may have leaked protects nothing any more. The audio
files are untouched: only the small wrapped keys in ``recording_keys`` change, each in place under a
compare-and-set on its old ``key_ref``, so a re-wrap racing an erasure (which destroys the key) or another
re-wrap never resurrects or double-wraps a key. Rows are taken in batches with ``FOR UPDATE SKIP LOCKED``:
several nodes or a repeated command share the work, and a crash mid-way leaves every row either old or new,
both readable. Destroyed keys (tombstones) are never touched.

Each rotation and each re-wrap run is one audit entry (counts and key references, never key material).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .errors import KeyUnavailableError, translated
from .scope import tenant_sql

__all__ = ["KeyRotation", "KeyUsage", "RewrapResult", "RotatingKeyProvider"]


class RotatingKeyProvider(Protocol):
    """A key provider whose tenant keys have versions (the key file; a KMS with key versions)."""

    def key_ref(self, tenant_id: UUID | None) -> str: ...

    def wrap(self, tenant_id: UUID | None, data_key: bytes) -> tuple[str, bytes]: ...

    def unwrap(self, key_ref: str, wrapped: bytes) -> bytes: ...

    def rotate(self, tenant_id: UUID | None) -> str: ...

    def key_refs(self, tenant_id: UUID | None) -> list[str]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyUsage:
    """One version of a tenant's key: how many live data keys it wraps, and whether it wraps new ones."""

    key_ref: str
    current: bool
    data_keys: int

    def to_json(self) -> dict[str, Any]:
        return {"key_ref": self.key_ref, "current": self.current, "data_keys": self.data_keys}


@dataclass(frozen=True, slots=True, kw_only=True)
class RewrapResult:
    """What a re-wrap run did: data keys moved to ``key_ref``, and those it could not unwrap (left as they
    were, named by recording, for the operator to look into)."""

    key_ref: str
    rewrapped: int
    failed: tuple[UUID, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "key_ref": self.key_ref,
            "rewrapped": self.rewrapped,
            "failed": [str(recording_id) for recording_id in self.failed],
        }


_USAGE = f"""
    SELECT key_ref, count(*) AS data_keys FROM recording_keys
    WHERE {tenant_sql("tenant_id", 1)} AND wrapped IS NOT NULL
    GROUP BY key_ref
"""  # noqa: S608 (constant fragment)
_STALE = f"""
    SELECT recording_id, key_ref, wrapped FROM recording_keys
    WHERE {tenant_sql("tenant_id", 1)} AND wrapped IS NOT NULL AND key_ref <> $2
      AND NOT (recording_id = ANY($3::uuid[]))
    ORDER BY recording_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
"""  # noqa: S608 (constant fragment)
_SWAP = """
    UPDATE recording_keys SET key_ref = $3, wrapped = $4
    WHERE recording_id = $1 AND key_ref = $2 AND wrapped IS NOT NULL
"""


class KeyRotation:
    """Rotation and re-wrapping for one tenant at a time (``None``: the calls no tenant claims)."""

    def __init__(self, pool: Any, provider: RotatingKeyProvider, audit: AuditLog | None = None) -> None:
        self._pool = pool
        self._provider = provider
        self._audit = audit or AuditLog()

    async def usage(self, tenant_id: UUID | None) -> list[KeyUsage]:
        """Every version of the tenant's key, oldest first, with the live data keys it wraps (a version the
        provider no longer holds but the catalogue still names is listed too: those keys cannot be read)."""
        refs = await asyncio.to_thread(self._provider.key_refs, tenant_id)
        current = await asyncio.to_thread(self._provider.key_ref, tenant_id) if refs else None
        with translated("count data keys by key version"):
            rows = await self._pool.fetch(_USAGE, tenant_id)
        counts = {row["key_ref"]: row["data_keys"] for row in rows}
        listed = [KeyUsage(key_ref=ref, current=ref == current, data_keys=counts.pop(ref, 0)) for ref in refs]
        return listed + [
            KeyUsage(key_ref=ref, current=False, data_keys=n) for ref, n in sorted(counts.items())
        ]

    async def rotate(self, tenant_id: UUID | None, actor: Actor) -> str:
        """A new version of the tenant's key, wrapping from now on; its reference."""
        key_ref = await asyncio.to_thread(self._provider.rotate, tenant_id)
        await self._audit.record(
            self._pool,
            AuditEntry(
                actor=actor,
                action="key.rotate",
                tenant_id=tenant_id,
                object_kind="key",
                object_id=key_ref,
            ),
        )
        return key_ref

    async def rewrap(self, tenant_id: UUID | None, actor: Actor, *, batch: int = 200) -> RewrapResult:
        """Move every live data key of the tenant wrapped by an older version to the current one."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        current = await asyncio.to_thread(self._provider.key_ref, tenant_id)
        rewrapped = 0
        failed: list[UUID] = []
        sources: set[str] = set()
        while True:
            with translated("re-wrap data keys"):
                async with self._pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetch(_STALE, tenant_id, current, failed, batch)
                    if not rows:
                        break
                    for row in rows:
                        try:
                            wrapped = await asyncio.to_thread(
                                self._rewrap_one, tenant_id, row["key_ref"], bytes(row["wrapped"])
                            )
                        except KeyUnavailableError:
                            failed.append(row["recording_id"])
                            continue
                        key_ref, data = wrapped
                        done = await conn.execute(_SWAP, row["recording_id"], row["key_ref"], key_ref, data)
                        if done.endswith(" 1"):
                            rewrapped += 1
                            sources.add(row["key_ref"])
        await self._audit.record(
            self._pool,
            AuditEntry(
                actor=actor,
                action="key.rewrap",
                tenant_id=tenant_id,
                object_kind="key",
                object_id=current,
                details={"rewrapped": rewrapped, "from": sorted(sources), "failed": len(failed)},
            ),
        )
        return RewrapResult(key_ref=current, rewrapped=rewrapped, failed=tuple(failed))

    def _rewrap_one(self, tenant_id: UUID | None, key_ref: str, wrapped: bytes) -> tuple[str, bytes]:
        data_key = self._provider.unwrap(key_ref, wrapped)
        return self._provider.wrap(tenant_id, data_key)
