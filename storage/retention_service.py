"""Retention classes, a tenant's selectable periods, and changing how long one recording is kept.

The rules are :mod:`storage.retention`'s; this service loads the facts, asks them, writes the outcome and the
audit entry in one transaction. A tenant acts only on its own recordings and classes; a recording's retention
is changed within a :data:`storage.scope.TenantScope` (``None``: the calls no tenant claimed;
:data:`~storage.scope.ALL_TENANTS`: the operator, on any recording), always under the rules of that recording's
own tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .audit import Actor, AuditEntry, AuditLog
from .errors import translated
from .lifecycle_rows import CLASS_COLUMNS, Lock, find_class, recording_facts, tenant_options
from .models import format_timestamp
from .retention import check_extra_options, plan_change, validate_options, validate_tenant_class
from .retention_class import Basis, RetentionClass
from .scope import TenantScope
from .tenant_lookup import find_tenant

__all__ = ["RetentionChange", "RetentionOptions", "RetentionService"]

_CLASSES = f"""
    SELECT {CLASS_COLUMNS} FROM retention_classes
    WHERE tenant_id IS NULL OR tenant_id = $1
    ORDER BY tenant_id NULLS FIRST, days, code
"""  # noqa: S608 (constant column list)
_PRESET_CODES = "SELECT code FROM retention_classes WHERE tenant_id IS NULL"
_CREATE = f"""
    INSERT INTO retention_classes (tenant_id, code, name, days, statutory, basis, source)
    VALUES ($1, $2, $3, $4, false, $5, $6)
    RETURNING {CLASS_COLUMNS}
"""  # noqa: S608
_CLEAR_OPTIONS = "DELETE FROM tenant_retention_options WHERE tenant_id = $1"
_ADD_OPTION = (
    "INSERT INTO tenant_retention_options (tenant_id, position, retention_class_id) VALUES ($1, $2, $3)"
)
_SET_RETENTION = "UPDATE recordings SET retention_class_id = $2, expires_at = $3 WHERE id = $1"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionOptions:
    """What a tenant's users may pick for a call: the default, then up to four more."""

    tenant_id: UUID
    default: RetentionClass | None  # None: not chosen; any preset or own class may be picked
    others: tuple[RetentionClass, ...] = ()

    @property
    def all(self) -> tuple[RetentionClass, ...]:
        return () if self.default is None else (self.default, *self.others)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.tenant_id),
            "default": None if self.default is None else self.default.to_json(),
            "others": [option.to_json() for option in self.others],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionChange:
    recording_id: UUID
    reference: str
    old_class: str | None
    new_class: str | None
    old_expires_at: datetime | None
    new_expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "old_class": self.old_class,
            "new_class": self.new_class,
            "old_expires_at": format_timestamp(self.old_expires_at),
            "new_expires_at": format_timestamp(self.new_expires_at),
        }


class RetentionService:
    def __init__(self, pool: Any, *, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock

    async def classes(self, tenant_id: UUID | None) -> list[RetentionClass]:
        """The presets, then the tenant's own classes (``None``: no tenant's, the presets only)."""
        with translated("list retention classes"):
            rows = await self._pool.fetch(_CLASSES, tenant_id)
        return [RetentionClass.from_row(row) for row in rows]

    async def create_class(
        self,
        tenant_id: UUID,
        *,
        code: str,
        name: str,
        days: int,
        actor: Actor,
        basis: Basis = Basis.LEGITIMATE_INTEREST,
        source: str = "tenant-defined period",
    ) -> RetentionClass:
        """A tenant's own class (never statutory). ``ValueError`` when it breaks a rule or its code is taken."""
        code = code.strip().lower()
        async with self._pool.acquire() as conn, conn.transaction():
            await find_tenant(conn, tenant_id)
            with translated("list preset retention classes"):
                presets = [row["code"] for row in await conn.fetch(_PRESET_CODES)]
            validate_tenant_class(
                code=code, name=name, days=days, basis=basis, source=source, preset_codes=presets
            )
            with translated("create a retention class"):
                try:
                    async with conn.transaction():
                        row = await conn.fetchrow(
                            _CREATE, tenant_id, code, name.strip(), days, Basis(basis).value, source.strip()
                        )
                except asyncpg.UniqueViolationError as exc:
                    raise ValueError(f"this tenant already has a retention class {code}") from exc
            created = RetentionClass.from_row(row)
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="retention_class.create",
                    tenant_id=tenant_id,
                    object_kind="retention_class",
                    object_id=str(created.id),
                    details=created.to_json(),
                ),
            )
        return created

    async def options(self, tenant_id: UUID) -> RetentionOptions:
        await find_tenant(self._pool, tenant_id)
        chosen = await tenant_options(self._pool, tenant_id)
        return _options(tenant_id, chosen)

    async def set_options(
        self, tenant_id: UUID, default: str, others: Sequence[str], actor: Actor
    ) -> RetentionOptions:
        """Replace the tenant's options by class codes (presets or its own): the default and up to four more."""
        check_extra_options(len(others))  # before looking any of them up
        async with self._pool.acquire() as conn, conn.transaction():
            await find_tenant(conn, tenant_id)
            before = await tenant_options(conn, tenant_id)
            chosen = validate_options(
                tenant_id,
                await find_class(conn, tenant_id, default),
                [await find_class(conn, tenant_id, code) for code in others],
            )
            with translated("set retention options"):
                await conn.execute(_CLEAR_OPTIONS, tenant_id)
                for position, option in enumerate(chosen):
                    await conn.execute(_ADD_OPTION, tenant_id, position, option.id)
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="retention.set_options",
                    tenant_id=tenant_id,
                    object_kind="tenant",
                    object_id=str(tenant_id),
                    details={
                        "old": [option.code for option in before],
                        "new": [option.code for option in chosen],
                    },
                ),
            )
        return _options(tenant_id, list(chosen))

    async def change_retention(
        self,
        scope: TenantScope,
        recording_id: UUID,
        *,
        actor: Actor,
        class_code: str | None = None,
        days: int | None = None,
    ) -> RetentionChange:
        """Move a recording to another class, or keep its class and set its period to ``days`` (from the start
        of the call). Raises what :func:`storage.retention.plan_change` raises, and :class:`NotFoundError`."""
        if (class_code is None) == (days is None):
            raise ValueError("give either a retention class or a number of days")
        async with self._pool.acquire() as conn, conn.transaction():
            facts = await recording_facts(conn, scope, recording_id, lock=Lock.UPDATE)
            target = None if class_code is None else await find_class(conn, facts.tenant_id, class_code)
            selectable = [] if facts.tenant_id is None else await tenant_options(conn, facts.tenant_id)
            new_expiry = plan_change(
                facts.retention(), now=self._clock(), target=target, days=days, selectable=selectable
            )
            new_class = target or facts.retention_class
            assert new_class is not None  # plan_change refuses a change of days without a class
            with translated("change a recording's retention"):
                await conn.execute(_SET_RETENTION, facts.id, new_class.id, new_expiry)
            change = RetentionChange(
                recording_id=facts.id,
                reference=facts.reference,
                old_class=None if facts.retention_class is None else facts.retention_class.code,
                new_class=new_class.code,
                old_expires_at=facts.expires_at,
                new_expires_at=new_expiry,
            )
            details = change.to_json()
            del details["recording_id"], details["reference"]
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="retention.change",
                    tenant_id=facts.tenant_id,
                    object_kind="recording",
                    object_id=str(facts.id),
                    details=details,
                ),
            )
        return change


def _options(tenant_id: UUID, chosen: Sequence[RetentionClass]) -> RetentionOptions:
    if not chosen:
        return RetentionOptions(tenant_id=tenant_id, default=None)
    return RetentionOptions(tenant_id=tenant_id, default=chosen[0], others=tuple(chosen[1:]))
