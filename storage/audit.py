"""The audit trail: an append-only, hash-chained log of every access to and change of recordings.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON, so changing,
removing or reordering any entry breaks every hash after it (:func:`storage.audit_verify.verify_chain`
finds where). The table refuses UPDATE and DELETE (migration 0004); appends from several nodes are
serialised by a transaction-scoped advisory lock, so sequence numbers have no gaps and the chain no forks.

An entry is appended in the same transaction as the action it records: an action that rolls back leaves no
entry, and an entry that cannot be written rolls the action back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .errors import CatalogueError, translated

__all__ = ["GENESIS", "Actor", "AuditEntry", "AuditLog", "StoredEntry", "entry_hash"]

GENESIS = "0" * 64  # prev_hash of the first entry
_APPEND_LOCK = 0x48_54_61_75_64_69_74  # "HTaudit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who did it, and from where: a user (``anna@example.hu``), ``system:<component>`` or ``cli:<os user>``."""

    name: str
    origin: str | None = None  # an IP address, "cli" or "server"

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("an actor needs a name")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """What to record. ``action`` is ``<object>.<verb>``, e.g. ``recording.play``, ``policy.change``."""

    actor: Actor
    action: str
    tenant_id: UUID | None = None
    object_kind: str | None = None
    object_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEntry:
    """An entry as stored, with its place in the chain."""

    seq: int
    at: datetime
    tenant_id: UUID | None
    actor: str
    origin: str | None
    action: str
    object_kind: str | None
    object_id: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredEntry:
        return cls(
            seq=row["seq"],
            at=row["at"],
            tenant_id=row["tenant_id"],
            actor=row["actor"],
            origin=row["origin"],
            action=row["action"],
            object_kind=row["object_kind"],
            object_id=row["object_id"],
            details=row["details"],
            prev_hash=row["prev_hash"],
            hash=row["hash"],
        )

    def expected_hash(self) -> str:
        """The hash this entry should carry, from its content and its ``prev_hash``."""
        return entry_hash(
            self.prev_hash,
            seq=self.seq,
            at=self.at,
            tenant_id=self.tenant_id,
            actor=self.actor,
            origin=self.origin,
            action=self.action,
            object_kind=self.object_kind,
            object_id=self.object_id,
            details=self.details,
        )


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    tenant_id: UUID | None,
    actor: str,
    origin: str | None,
    action: str,
    object_kind: str | None,
    object_id: str | None,
    details: Mapping[str, Any],
) -> str:
    """SHA-256 (hex) over the previous hash and the entry's canonical JSON (sorted keys, no spaces, UTC time
    with microseconds)."""
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "tenant_id": None if tenant_id is None else str(tenant_id),
            "actor": actor,
            "origin": origin,
            "action": action,
            "object_kind": object_kind,
            "object_id": object_id,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


class AuditLog:
    """Appends entries; ``clock`` gives the entry time (injected in tests)."""

    def __init__(self, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    async def append(self, conn: Any, entry: AuditEntry) -> StoredEntry:
        """Append within the caller's open transaction on ``conn`` (an asyncpg connection)."""
        if not conn.is_in_transaction():
            raise CatalogueError(
                "audit entries are appended inside the transaction of the action they record"
            )
        details = dict(entry.details)
        with translated("append to the audit log"):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPEND_LOCK)
            last = await conn.fetchrow("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            seq = 1 if last is None else last["seq"] + 1
            prev_hash = GENESIS if last is None else last["hash"]
            at = self._clock().astimezone(UTC)
            digest = entry_hash(
                prev_hash,
                seq=seq,
                at=at,
                tenant_id=entry.tenant_id,
                actor=entry.actor.name,
                origin=entry.actor.origin,
                action=entry.action,
                object_kind=entry.object_kind,
                object_id=entry.object_id,
                details=details,
            )
            row = await conn.fetchrow(
                """
                INSERT INTO audit_log (seq, at, tenant_id, actor, origin, action, object_kind, object_id,
                                       details, prev_hash, hash)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                RETURNING *
                """,
                seq,
                at,
                entry.tenant_id,
                entry.actor.name,
                entry.actor.origin,
                entry.action,
                entry.object_kind,
                entry.object_id,
                details,
                prev_hash,
                digest,
            )
        return StoredEntry.from_row(row)

    async def record(self, pool: Any, entry: AuditEntry) -> StoredEntry:
        """Append in a transaction of its own: for actions with no database change (play, download)."""
        async with pool.acquire() as conn, conn.transaction():
            return await self.append(conn, entry)
