"""Recording policies in the catalogue: versioned, audited, announced to every server (GDPR Art. 5(2), 30).

A policy row is never edited. `PolicyStore.set` inserts the next version for its scope and direction and ends
the current one (``superseded_at``) in the same transaction, with an audit entry carrying the old and new
values; `remove` ends the current one with no successor, so the scope falls back to the broader one. A
recording keeps pointing at the version that decided it. Every change is announced with
``NOTIFY hangtar_policies`` in its transaction, so servers load a fresh `PolicySnapshot` once it commits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .audit import Actor, AuditEntry, AuditLog
from .errors import NotFoundError, translated
from .lifecycle_rows import find_class
from .policy_rules import Policy, PolicyDirection, PolicySpec, ScopeKind, validate_policy
from .policy_snapshot import PolicySnapshot
from .retention_class import RetentionClass
from .tenant_lookup import TENANT_COLUMNS, find_tenant
from .tenant_models import Tenant, TenantNumber, TenantSource

__all__ = ["POLICY_CHANNEL", "PolicyScope", "PolicyStore", "publish_change"]

POLICY_CHANNEL = "hangtar_policies"

_POLICY_COLUMNS = """
    p.id, p.tenant_id, p.number_id, p.version, p.direction, p.record, p.basis, p.statute, p.purpose,
    p.retention_class_id, p.format, p.consent, p.created_at, p.created_by, p.superseded_at,
    c.code AS retention_code
"""
_POLICIES = f"""
    SELECT {_POLICY_COLUMNS}
    FROM recording_policies p LEFT JOIN retention_classes c ON c.id = p.retention_class_id
"""  # noqa: S608 (constant column list)
_SCOPE = "p.tenant_id IS NOT DISTINCT FROM $1 AND p.number_id IS NOT DISTINCT FROM $2"
_SUPERSEDE = "UPDATE recording_policies SET superseded_at = $2 WHERE id = $1"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyScope:
    """The system (both None), a tenant (``number_id`` None) or one number of the tenant."""

    tenant_id: UUID | None = None
    number_id: int | None = None

    def __post_init__(self) -> None:
        if self.number_id is not None and self.tenant_id is None:
            raise ValueError("a number scope belongs to a tenant")

    @classmethod
    def system(cls) -> PolicyScope:
        return cls()

    @classmethod
    def for_tenant(cls, tenant_id: UUID) -> PolicyScope:
        return cls(tenant_id=tenant_id)

    @classmethod
    def for_number(cls, tenant_id: UUID, number_id: int) -> PolicyScope:
        return cls(tenant_id=tenant_id, number_id=number_id)

    @property
    def kind(self) -> ScopeKind:
        if self.tenant_id is None:
            return ScopeKind.SYSTEM
        return ScopeKind.TENANT if self.number_id is None else ScopeKind.NUMBER

    def describe(self) -> str:
        if self.tenant_id is None:
            return "system"
        return f"tenant {self.tenant_id}" + ("" if self.number_id is None else f" number #{self.number_id}")


async def publish_change(conn: Any, *, what: str, tenant_id: UUID | None) -> None:
    """Announce, inside the caller's transaction, that attribution or policy data changed: servers listening
    on ``hangtar_policies`` reload their snapshot when the transaction commits."""
    payload = json.dumps({"what": what, "tenant_id": None if tenant_id is None else str(tenant_id)})
    await conn.execute("SELECT pg_notify($1, $2)", POLICY_CHANNEL, payload)


class PolicyStore:
    def __init__(
        self, pool: Any, audit: AuditLog, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock

    async def set(self, scope: PolicyScope, spec: PolicySpec, *, actor: Actor) -> Policy:
        """Make ``spec`` the current policy of ``scope`` for ``spec.direction``: the next version. Setting
        what is already current changes nothing and returns the current version."""
        with translated("change a recording policy"):
            async with self._pool.acquire() as conn, conn.transaction():
                await self._lock_scope(conn, scope)
                retention = None
                if spec.retention is not None:
                    retention = await find_class(conn, scope.tenant_id, spec.retention)
                validate_policy(spec, retention)
                old = await self._current(conn, scope, spec.direction, for_update=True)
                if old is not None and _same(old, spec, retention):
                    return old
                now = self._clock()
                version = await conn.fetchval(
                    f"SELECT COALESCE(max(version), 0) + 1 FROM recording_policies p "  # noqa: S608
                    f"WHERE {_SCOPE} AND p.direction = $3",
                    scope.tenant_id,
                    scope.number_id,
                    spec.direction.value,
                )
                if old is not None:
                    await conn.execute(_SUPERSEDE, old.id, now)
                row = await conn.fetchrow(
                    """
                    INSERT INTO recording_policies (tenant_id, number_id, version, direction, record, basis,
                        statute, purpose, retention_class_id, format, consent, created_at, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                    RETURNING id
                    """,
                    scope.tenant_id,
                    scope.number_id,
                    version,
                    spec.direction.value,
                    spec.record,
                    None if spec.basis is None else spec.basis.value,
                    spec.statute,
                    spec.purpose,
                    None if retention is None else retention.id,
                    spec.format,
                    None if spec.consent is None else spec.consent.to_json(),
                    now,
                    actor.name,
                )
                new = await self._get(conn, row["id"])
                changes = {"old": None if old is None else old.to_json(), "new": new.to_json()}
                await self._changed(conn, actor, "policy.change", scope, spec.direction, new.id, changes)
                return new

    async def remove(self, scope: PolicyScope, direction: PolicyDirection, *, actor: Actor) -> Policy:
        """End the current policy of ``scope`` for ``direction`` with no successor; returns it as ended."""
        with translated("remove a recording policy"):
            async with self._pool.acquire() as conn, conn.transaction():
                await self._lock_scope(conn, scope)
                old = await self._current(conn, scope, direction, for_update=True)
                if old is None:
                    raise NotFoundError(f"{scope.describe()} has no current {direction.value} policy")
                await conn.execute(_SUPERSEDE, old.id, self._clock())
                ended = await self._get(conn, old.id)
                await self._changed(
                    conn, actor, "policy.remove", scope, direction, old.id, {"old": old.to_json()}
                )
                return ended

    async def current(self, scope: PolicyScope) -> list[Policy]:
        """The current policies of exactly this scope (no fallback), by direction."""
        with translated("read recording policies"):
            async with self._pool.acquire() as conn:
                await self._check_scope(conn, scope)
                rows = await conn.fetch(
                    f"{_POLICIES} WHERE {_SCOPE} AND p.superseded_at IS NULL ORDER BY p.direction",
                    scope.tenant_id,
                    scope.number_id,
                )
        return [Policy.from_row(row) for row in rows]

    async def list_current(self, tenant_id: UUID | None) -> list[Policy]:
        """Every current policy of a tenant (tenant-wide and per number), or the system's (None)."""
        with translated("read recording policies"):
            async with self._pool.acquire() as conn:
                if tenant_id is not None:
                    await self._check_scope(conn, PolicyScope.for_tenant(tenant_id))
                rows = await conn.fetch(
                    f"{_POLICIES} WHERE p.tenant_id IS NOT DISTINCT FROM $1 AND p.superseded_at IS NULL "
                    f"ORDER BY p.number_id NULLS FIRST, p.direction",
                    tenant_id,
                )
        return [Policy.from_row(row) for row in rows]

    async def history(self, scope: PolicyScope, direction: PolicyDirection | None = None) -> list[Policy]:
        """Every version of the scope's policies, oldest first (per direction)."""
        with translated("read recording policy history"):
            async with self._pool.acquire() as conn:
                await self._check_scope(conn, scope)
                rows = await conn.fetch(
                    f"{_POLICIES} WHERE {_SCOPE} AND ($3::text IS NULL OR p.direction = $3) "
                    f"ORDER BY p.direction, p.version",
                    scope.tenant_id,
                    scope.number_id,
                    None if direction is None else direction.value,
                )
        return [Policy.from_row(row) for row in rows]

    async def get(self, policy_id: int, *, tenant_id: UUID | None) -> Policy:
        """One version by id; a tenant sees only its own, None sees the system's."""
        with translated("read a recording policy"):
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(
                    f"{_POLICIES} WHERE p.id = $1 AND p.tenant_id IS NOT DISTINCT FROM $2",
                    policy_id,
                    tenant_id,
                )
        if row is None:
            raise NotFoundError(f"no recording policy {policy_id}")
        return Policy.from_row(row)

    async def retention_class(self, tenant_id: UUID | None, code: str) -> RetentionClass:
        """A class by code: the tenant's own first, else a preset (None: presets only)."""
        return await find_class(self._pool, tenant_id, code)

    async def snapshot(self) -> PolicySnapshot:
        """Tenants, numbers, sources, current policies and retention classes, read in one consistent view."""
        with translated("load the recording policies"):
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                tenants = await conn.fetch(f"SELECT {TENANT_COLUMNS} FROM tenants")  # noqa: S608
                numbers = await conn.fetch(
                    "SELECT id, tenant_id, kind, value, label, created_at FROM tenant_numbers"
                )
                sources = await conn.fetch("SELECT network, tenant_id, created_at FROM tenant_sources")
                policies = await conn.fetch(f"{_POLICIES} WHERE p.superseded_at IS NULL")
                classes = await conn.fetch("SELECT * FROM retention_classes")
        return PolicySnapshot(
            tenants=[Tenant.from_row(row) for row in tenants],
            numbers=[TenantNumber.from_row(row) for row in numbers],
            sources=[TenantSource.from_row(row) for row in sources],
            policies=[Policy.from_row(row) for row in policies],
            classes=[RetentionClass.from_row(row) for row in classes],
            loaded_at=self._clock(),
        )

    async def _changed(
        self,
        conn: Any,
        actor: Actor,
        action: str,
        scope: PolicyScope,
        direction: PolicyDirection,
        policy_id: int,
        changes: dict[str, Any],
    ) -> None:
        """Audit a change of ``scope``'s policy for ``direction`` and announce it, in the caller's transaction."""
        details = {"scope": scope.kind.value, "number_id": scope.number_id, "direction": direction.value}
        await self._audit.append(
            conn,
            AuditEntry(
                actor=actor,
                action=action,
                tenant_id=scope.tenant_id,
                object_kind="recording_policy",
                object_id=str(policy_id),
                details=details | changes,
            ),
        )
        await publish_change(conn, what="policy", tenant_id=scope.tenant_id)

    async def _lock_scope(self, conn: Any, scope: PolicyScope) -> None:
        """Serialise changes of one scope (two operators at once get versions n+1 and n+2, not a clash)."""
        await self._check_scope(conn, scope)
        key = f"hangtar_policy:{scope.tenant_id}:{scope.number_id}"
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", key)

    async def _check_scope(self, conn: Any, scope: PolicyScope) -> None:
        if scope.tenant_id is not None:
            await find_tenant(conn, scope.tenant_id)
        if scope.number_id is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM tenant_numbers WHERE id = $1 AND tenant_id = $2)",
            scope.number_id,
            scope.tenant_id,
        ):
            raise NotFoundError(f"tenant {scope.tenant_id} has no number #{scope.number_id}")

    async def _current(
        self, conn: Any, scope: PolicyScope, direction: PolicyDirection, *, for_update: bool = False
    ) -> Policy | None:
        lock = " FOR UPDATE OF p" if for_update else ""
        row = await conn.fetchrow(
            f"{_POLICIES} WHERE {_SCOPE} AND p.direction = $3 AND p.superseded_at IS NULL{lock}",
            scope.tenant_id,
            scope.number_id,
            direction.value,
        )
        return None if row is None else Policy.from_row(row)

    async def _get(self, conn: Any, policy_id: int) -> Policy:
        return Policy.from_row(await conn.fetchrow(f"{_POLICIES} WHERE p.id = $1", policy_id))


def _same(old: Policy, spec: PolicySpec, retention: RetentionClass | None) -> bool:
    return (
        old.record == spec.record
        and old.basis == spec.basis
        and old.statute == spec.statute
        and old.purpose == spec.purpose
        and old.retention_class_id == (None if retention is None else retention.id)
        and old.format == spec.format
        and old.consent == spec.consent
    )
