"""Tenants, their numbers and their source networks in the catalogue: the service the CLI and the API share.

Every change is audited in its own transaction (``tenant.*``, ``number.*``, ``source.*``) and announced with
``NOTIFY hangtar_policies``, since it changes how calls are attributed. Methods acting for a tenant take its
id and never reach another tenant's rows: a number or network of another tenant is `NotFoundError`. A public
number or range belongs to one tenant; claiming one another tenant holds is a `ConflictError` (which says
only that: the owner is in ``owner_slug`` for operators, not in the message a tenant may see).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .audit import Actor, AuditEntry, AuditLog
from .errors import ConflictError, LifecycleError, NotFoundError, translated
from .phone import DEFAULT_REGION
from .policies import publish_change
from .policy_rules import Policy
from .tenant_lookup import TENANT_COLUMNS, find_tenant
from .tenant_models import (
    NumberKind,
    Tenant,
    TenantNumber,
    TenantSource,
    parse_did,
    parse_extension,
    parse_hints,
    parse_network,
    parse_range,
    parse_region,
    parse_slug,
)

__all__ = ["TenantStore"]

_HINT_LOCK = 0x48_54_68_69_6E_74  # "HThint": hint changes are serialised so two tenants never share one
_NUMBER_COLUMNS = "id, tenant_id, kind, value, label, created_at"


class TenantStore:
    def __init__(
        self, pool: Any, audit: AuditLog, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock

    # -- tenants ----------------------------------------------------------------------------------------------
    async def create(
        self,
        *,
        slug: str,
        name: str,
        actor: Actor,
        region: str = DEFAULT_REGION,
        hints: Sequence[str] = (),
    ) -> Tenant:
        slug, region, clean_hints = parse_slug(slug), parse_region(region), parse_hints(hints)
        name = _name(name)
        with translated("create a tenant"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _HINT_LOCK)
                if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE slug = $1)", slug):
                    raise ConflictError(f"a tenant {slug!r} already exists", owner_slug=slug)
                await self._check_hints(conn, None, clean_hints)
                now = self._clock()
                row = await conn.fetchrow(
                    f"""
                    INSERT INTO tenants (id, slug, name, region, hints, created_at, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $6)
                    RETURNING {TENANT_COLUMNS}
                    """,  # noqa: S608
                    uuid4(),
                    slug,
                    name,
                    region,
                    list(clean_hints),
                    now,
                )
                tenant = Tenant.from_row(row)
                await self._log(
                    conn, actor, "tenant.create", tenant.id, "tenant", str(tenant.id), tenant.to_json()
                )
                return tenant

    async def get(self, slug_or_id: str | UUID) -> Tenant:
        """A tenant by its id or slug (:func:`storage.tenant_lookup.find_tenant`)."""
        return await find_tenant(self._pool, slug_or_id)

    async def list(self) -> builtins.list[Tenant]:
        with translated("list tenants"):
            rows = await self._pool.fetch(f"SELECT {TENANT_COLUMNS} FROM tenants ORDER BY slug")  # noqa: S608
        return [Tenant.from_row(row) for row in rows]

    async def update(
        self,
        tenant_id: UUID,
        *,
        actor: Actor,
        name: str | None = None,
        hints: Sequence[str] | None = None,
    ) -> Tenant:
        """Change the name and/or replace the hints (None: unchanged)."""
        with translated("update a tenant"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _HINT_LOCK)
                old = await find_tenant(conn, tenant_id, for_update=True)
                new_name = old.name if name is None else _name(name)
                new_hints = old.hints if hints is None else parse_hints(hints)
                if (new_name, new_hints) == (old.name, old.hints):
                    return old
                await self._check_hints(conn, tenant_id, new_hints)
                row = await conn.fetchrow(
                    f"""
                    UPDATE tenants SET name = $2, hints = $3 WHERE id = $1 RETURNING {TENANT_COLUMNS}
                    """,  # noqa: S608
                    tenant_id,
                    new_name,
                    list(new_hints),
                )
                new = Tenant.from_row(row)
                changed = {
                    key: {"old": before, "new": after}
                    for key, before, after in (
                        ("name", old.name, new.name),
                        ("hints", list(old.hints), list(new.hints)),
                    )
                    if before != after
                }
                await self._log(conn, actor, "tenant.update", tenant_id, "tenant", str(tenant_id), changed)
                if "hints" in changed:
                    await publish_change(conn, what="tenant", tenant_id=tenant_id)
                return new

    async def delete(self, tenant_id: UUID, *, actor: Actor) -> Tenant:
        """Delete a tenant with its numbers, sources, policies and own classes. Refused while it has
        recordings (erase them first), active holds, or access-request and withdrawal records kept as proof."""
        with translated("delete a tenant"):
            async with self._pool.acquire() as conn, conn.transaction():
                tenant = await find_tenant(conn, tenant_id, for_update=True)
                counts = await conn.fetchrow(
                    """
                    SELECT (SELECT count(*) FROM recordings WHERE tenant_id = $1) AS recordings,
                           (SELECT count(*) FROM holds WHERE tenant_id = $1) AS holds,
                           (SELECT count(*) FROM access_requests WHERE tenant_id = $1) AS access_requests,
                           (SELECT count(*) FROM consent_withdrawals WHERE tenant_id = $1) AS withdrawals
                    """,
                    tenant_id,
                )
                reasons = [
                    text
                    for count, text in (
                        (
                            counts["recordings"],
                            "recording(s): erase them first, the tenant is their controller",
                        ),
                        (counts["holds"], "legal hold record(s) (GDPR Art. 18)"),
                        (counts["access_requests"], "access request case(s) kept as proof (Art. 15, 5(2))"),
                        (counts["withdrawals"], "consent withdrawal record(s) kept as proof (Art. 7(3))"),
                    )
                    if count
                    for text in [f"{count} {text}"]
                ]
                if reasons:
                    raise LifecycleError(
                        f"tenant {tenant.slug!r} cannot be deleted: it has {'; '.join(reasons)}"
                    )
                policies = await conn.fetch(
                    "SELECT id, version FROM recording_policies WHERE tenant_id = $1", tenant_id
                )
                numbers = await conn.fetchval(
                    "SELECT count(*) FROM tenant_numbers WHERE tenant_id = $1", tenant_id
                )
                await conn.execute("DELETE FROM tenants WHERE id = $1", tenant_id)
                details = tenant.to_json() | {
                    "numbers": numbers,
                    "policy_versions": [row["id"] for row in policies],
                }
                await self._log(conn, actor, "tenant.delete", tenant_id, "tenant", str(tenant_id), details)
                await publish_change(conn, what="tenant", tenant_id=tenant_id)
                return tenant

    # -- numbers ----------------------------------------------------------------------------------------------
    async def add_number(
        self,
        tenant_id: UUID,
        text: str,
        *,
        actor: Actor,
        kind: NumberKind = NumberKind.NUMBER,
        label: str | None = None,
    ) -> TenantNumber:
        """Add a DID (any written form, read in the tenant's region), a range or an extension."""
        with translated("add a number"):
            async with self._pool.acquire() as conn, conn.transaction():
                tenant = await find_tenant(conn, tenant_id)
                value = _parse_number(text, kind, tenant.region)
                await self._check_number_free(conn, tenant, kind, value)
                try:
                    row = await conn.fetchrow(
                        f"""
                        INSERT INTO tenant_numbers (tenant_id, kind, value, label, created_at)
                        VALUES ($1, $2, $3, $4, $5)
                        RETURNING {_NUMBER_COLUMNS}
                        """,  # noqa: S608
                        tenant_id,
                        kind.value,
                        value,
                        _label(label),
                        self._clock(),
                    )
                except asyncpg.UniqueViolationError as exc:  # added by someone else just now
                    raise ConflictError(f"{kind.value} {value} was just added to a tenant") from exc
                number = TenantNumber.from_row(row)
                details = number.to_json() | {"written": text}
                await self._log(
                    conn, actor, "number.add", tenant_id, "tenant_number", str(number.id), details
                )
                await publish_change(conn, what="number", tenant_id=tenant_id)
                return number

    async def remove_number(self, tenant_id: UUID, number_id: int, *, actor: Actor) -> TenantNumber:
        """Remove a number with its number-scoped policies (their versions are kept in the audit entry).
        Refused while a recording points at one of those policy versions: it must stay explainable."""
        with translated("remove a number"):
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    f"SELECT {_NUMBER_COLUMNS} FROM tenant_numbers WHERE id = $1 AND tenant_id = $2 FOR UPDATE",  # noqa: S608
                    number_id,
                    tenant_id,
                )
                if row is None:
                    raise NotFoundError(f"tenant {tenant_id} has no number #{number_id}")
                number = TenantNumber.from_row(row)
                used = await conn.fetchval(
                    """
                    SELECT count(*) FROM recordings r JOIN recording_policies p ON p.id = r.policy_id
                    WHERE p.number_id = $1
                    """,
                    number_id,
                )
                if used:
                    raise LifecycleError(
                        f"{number.kind.value} {number.value} cannot be removed: {used} recording(s) were "
                        f"decided by its policies, which must stay on record; remove its policies instead "
                        f"(the tenant's policy then applies)"
                    )
                policies = await conn.fetch(
                    """
                    SELECT p.*, c.code AS retention_code FROM recording_policies p
                    LEFT JOIN retention_classes c ON c.id = p.retention_class_id
                    WHERE p.number_id = $1 ORDER BY p.direction, p.version
                    """,
                    number_id,
                )
                await conn.execute("DELETE FROM tenant_numbers WHERE id = $1", number_id)
                details = number.to_json() | {"policies": [Policy.from_row(p).to_json() for p in policies]}
                await self._log(
                    conn, actor, "number.remove", tenant_id, "tenant_number", str(number_id), details
                )
                await publish_change(conn, what="number", tenant_id=tenant_id)
                return number

    async def find_number(self, tenant_id: UUID, text: str) -> TenantNumber:
        """The tenant's number as written in any form: a DID, a range (either notation), an extension, or
        the stored value itself."""
        with translated("find a number"):
            async with self._pool.acquire() as conn:
                tenant = await find_tenant(conn, tenant_id)
                candidates: builtins.list[tuple[str, str]] = []
                for kind in NumberKind:
                    try:
                        candidates.append((kind.value, _parse_number(text, kind, tenant.region)))
                    except ValueError:
                        continue
                row = await conn.fetchrow(
                    f"""
                    SELECT {_NUMBER_COLUMNS} FROM tenant_numbers
                    WHERE tenant_id = $1
                      AND (value = $2 OR (kind, value) IN (SELECT * FROM unnest($3::text[], $4::text[])))
                    ORDER BY value = $2 DESC, kind LIMIT 1
                    """,  # noqa: S608
                    tenant_id,
                    text.strip(),
                    [kind for kind, _ in candidates],
                    [value for _, value in candidates],
                )
        if row is None:
            raise NotFoundError(f"tenant {tenant.slug!r} has no number {text!r}")
        return TenantNumber.from_row(row)

    async def numbers(self, tenant_id: UUID) -> builtins.list[TenantNumber]:
        with translated("list numbers"):
            async with self._pool.acquire() as conn:
                await find_tenant(conn, tenant_id)
                rows = await conn.fetch(
                    f"SELECT {_NUMBER_COLUMNS} FROM tenant_numbers WHERE tenant_id = $1 ORDER BY kind, value",  # noqa: S608
                    tenant_id,
                )
        return [TenantNumber.from_row(row) for row in rows]

    # -- source networks --------------------------------------------------------------------------------------
    async def add_source(self, tenant_id: UUID, network: str, *, actor: Actor) -> TenantSource:
        """A network whose SBCs or PBXes carry only this tenant's calls. Overlaps are allowed: the most
        specific network attributes a call."""
        parsed = parse_network(network)
        with translated("add a source network"):
            async with self._pool.acquire() as conn, conn.transaction():
                await find_tenant(conn, tenant_id)
                owner = await conn.fetchval(
                    "SELECT t.slug FROM tenant_sources s JOIN tenants t ON t.id = s.tenant_id WHERE s.network = $1",
                    parsed,
                )
                if owner is not None:
                    raise ConflictError(f"network {parsed} is already a tenant's source", owner_slug=owner)
                try:
                    row = await conn.fetchrow(
                        """
                        INSERT INTO tenant_sources (network, tenant_id, created_at) VALUES ($1, $2, $3)
                        RETURNING network, tenant_id, created_at
                        """,
                        parsed,
                        tenant_id,
                        self._clock(),
                    )
                except asyncpg.UniqueViolationError as exc:
                    raise ConflictError(f"network {parsed} was just added to a tenant") from exc
                source = TenantSource.from_row(row)
                await self._log(
                    conn, actor, "source.add", tenant_id, "tenant_source", str(parsed), source.to_json()
                )
                await publish_change(conn, what="source", tenant_id=tenant_id)
                return source

    async def remove_source(self, tenant_id: UUID, network: str, *, actor: Actor) -> TenantSource:
        parsed = parse_network(network)
        with translated("remove a source network"):
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    """
                    DELETE FROM tenant_sources WHERE network = $1 AND tenant_id = $2
                    RETURNING network, tenant_id, created_at
                    """,
                    parsed,
                    tenant_id,
                )
                if row is None:
                    raise NotFoundError(f"tenant {tenant_id} has no source network {parsed}")
                source = TenantSource.from_row(row)
                await self._log(
                    conn, actor, "source.remove", tenant_id, "tenant_source", str(parsed), source.to_json()
                )
                await publish_change(conn, what="source", tenant_id=tenant_id)
                return source

    async def sources(self, tenant_id: UUID) -> builtins.list[TenantSource]:
        with translated("list source networks"):
            async with self._pool.acquire() as conn:
                await find_tenant(conn, tenant_id)
                rows = await conn.fetch(
                    "SELECT network, tenant_id, created_at FROM tenant_sources WHERE tenant_id = $1 ORDER BY network",
                    tenant_id,
                )
        return [TenantSource.from_row(row) for row in rows]

    # -- helpers ----------------------------------------------------------------------------------------------
    async def _check_hints(self, conn: Any, tenant_id: UUID | None, hints: tuple[str, ...]) -> None:
        if not hints:
            return
        wanted = {hint.casefold(): hint for hint in hints}
        rows = await conn.fetch(
            "SELECT slug, hints FROM tenants WHERE id IS DISTINCT FROM $1 AND cardinality(hints) > 0",
            tenant_id,
        )
        for row in rows:
            for hint in row["hints"]:
                if hint.casefold() in wanted:
                    raise ConflictError(
                        f"hint {wanted[hint.casefold()]!r} already names another tenant",
                        owner_slug=row["slug"],
                    )

    async def _check_number_free(self, conn: Any, tenant: Tenant, kind: NumberKind, value: str) -> None:
        if kind is NumberKind.EXTENSION:
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM tenant_numbers "
                "WHERE tenant_id = $1 AND kind = 'extension' AND value = $2)",
                tenant.id,
                value,
            ):
                raise ConflictError(
                    f"extension {value} is already one of this tenant's", owner_slug=tenant.slug
                )
            return
        owner = await conn.fetchrow(
            "SELECT t.id, t.slug FROM tenant_numbers n JOIN tenants t ON t.id = n.tenant_id "
            "WHERE n.kind = $1 AND n.value = $2",
            kind.value,
            value,
        )
        if owner is None:
            return
        if owner["id"] == tenant.id:
            raise ConflictError(
                f"{kind.value} {value} is already one of this tenant's", owner_slug=tenant.slug
            )
        raise ConflictError(
            f"{kind.value} {value} already belongs to another tenant", owner_slug=owner["slug"]
        )

    async def _log(
        self,
        conn: Any,
        actor: Actor,
        action: str,
        tenant_id: UUID,
        object_kind: str,
        object_id: str,
        details: dict[str, Any],
    ) -> None:
        await self._audit.append(
            conn,
            AuditEntry(
                actor=actor,
                action=action,
                tenant_id=tenant_id,
                object_kind=object_kind,
                object_id=object_id,
                details=details,
            ),
        )


def _parse_number(text: str, kind: NumberKind, region: str) -> str:
    if kind is NumberKind.NUMBER:
        return parse_did(text, region)
    if kind is NumberKind.RANGE:
        return parse_range(text, region)
    return parse_extension(text, region)


def _name(name: str) -> str:
    clean = " ".join(name.split())
    if not clean or len(clean) > 200:
        raise ValueError("a tenant name is 1-200 characters")
    return clean


def _label(label: str | None) -> str | None:
    if label is None:
        return None
    clean = " ".join(label.split())
    if len(clean) > 200:
        raise ValueError("a number label is at most 200 characters")
    return clean or None
