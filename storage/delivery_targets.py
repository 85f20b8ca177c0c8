"""Delivery targets: where a tenant's recordings are sent (its SFTP/FTPS server, its CRM's webhook).

:class:`TargetStore` owns the ``delivery_targets`` SQL. Settings are checked first
(:func:`storage.delivery_settings.check_settings`: plain FTP and an SFTP server without a pinned host key are
refused with the reason); the secret is stored only encrypted under the tenant's key
(:mod:`storage.delivery_secrets`) and unwrapped on demand by :meth:`TargetStore.secret`. No value object,
``repr``, audit entry or log line carries it. Every change is audited in its own transaction, with the target's
kind, name and endpoint, and never a number of the filter (the audit trail keeps no personal data).

A target whose copies were delivered cannot be removed: its log is the record of where copies of personal data
went, and erasure notices must still reach it (GDPR Art. 19); disable it instead.
"""

from __future__ import annotations

import asyncio
import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .audit import Actor, AuditEntry, AuditLog
from .delivery_filter import DeliveryFilter
from .delivery_schedule import Schedule
from .delivery_secrets import open_secret, seal_secret
from .delivery_settings import InsecureTargetError, TargetKind, TargetSettingsError, check_settings
from .errors import ConflictError, LifecycleError, NotFoundError, translated
from .keys import KeyProvider
from .models import format_timestamp
from .scope import ALL_TENANTS, AllTenants, scope_args, scope_sql

__all__ = [
    "DeliveryTarget",
    "InsecureTargetError",
    "TargetKind",
    "TargetSettingsError",
    "TargetStore",
]

TargetScope = UUID | AllTenants
DEFAULT_MAX_ATTEMPTS = 12
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # the table's CHECK delivery_targets_name_format

_COLUMNS = """
    id, tenant_id, kind, name, enabled, settings, secret_ref, secret_wrapped IS NOT NULL AS has_secret, schedule,
    filter, delete_after_delivery, max_attempts, deliver_since, last_enqueued_at, created_at, updated_at
"""
_INSERT = f"""
    INSERT INTO delivery_targets (id, tenant_id, kind, name, enabled, settings, secret_ref, secret_wrapped,
                                  schedule, filter, delete_after_delivery, max_attempts, deliver_since,
                                  created_at, updated_at)
    VALUES ($1, $2, $3, $4, true, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12)
    RETURNING {_COLUMNS}
"""  # noqa: S608 (constant column list)
_GET = f"SELECT {_COLUMNS} FROM delivery_targets WHERE id = $1 AND {scope_sql('tenant_id', 2)}"  # noqa: S608
_FIND = f"SELECT {_COLUMNS} FROM delivery_targets WHERE tenant_id = $1 AND name = $2"  # noqa: S608
_LIST = f"""
    SELECT {_COLUMNS} FROM delivery_targets WHERE {scope_sql("tenant_id", 1)} ORDER BY tenant_id, name
"""  # noqa: S608
_UPDATE = f"""
    UPDATE delivery_targets SET settings = $2, schedule = $3, filter = $4, delete_after_delivery = $5,
        max_attempts = $6, secret_ref = COALESCE($7, secret_ref), secret_wrapped = COALESCE($8, secret_wrapped),
        updated_at = $9
    WHERE id = $1
    RETURNING {_COLUMNS}
"""  # noqa: S608
_ENABLE = f"UPDATE delivery_targets SET enabled = $2, updated_at = $3 WHERE id = $1 RETURNING {_COLUMNS}"  # noqa: S608
_WRAPPED = "SELECT secret_ref, secret_wrapped FROM delivery_targets WHERE id = $1"
_DELIVERED = "SELECT count(*) FROM deliveries WHERE target_id = $1 AND status = 'delivered'"
_DELETE = "DELETE FROM delivery_targets WHERE id = $1"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryTarget:
    """A target as stored, without its secret (``has_secret`` says whether one is set)."""

    id: UUID
    tenant_id: UUID
    kind: TargetKind
    name: str
    enabled: bool
    settings: Mapping[str, Any] = field(hash=False)
    schedule: Schedule
    filter: DeliveryFilter
    delete_after_delivery: bool
    max_attempts: int
    has_secret: bool
    deliver_since: datetime
    last_enqueued_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeliveryTarget:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            kind=TargetKind(row["kind"]),
            name=row["name"],
            enabled=row["enabled"],
            settings=dict(row["settings"]),
            schedule=Schedule.from_json(row["schedule"]),
            filter=DeliveryFilter.from_json(row["filter"]),
            delete_after_delivery=row["delete_after_delivery"],
            max_attempts=row["max_attempts"],
            has_secret=row["has_secret"],
            deliver_since=row["deliver_since"],
            last_enqueued_at=row["last_enqueued_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def endpoint(self) -> str:
        """Where it delivers, as a URL: ``sftp://rec@files.example.hu:22/srv/in`` (an absolute directory),
        ``sftp://rec@files.example.hu:22/~/in`` (under the account's home), or the webhook's URL."""
        if self.kind is TargetKind.WEBHOOK:
            return str(self.settings.get("url"))
        settings = self.settings
        directory = str(settings["remote_dir"])
        if not directory.startswith("/"):
            directory = "/~" if directory == "." else f"/~/{directory.removeprefix('./')}"
        return f"{self.kind.value}://{settings['username']}@{settings['host']}:{settings['port']}{directory}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "kind": self.kind.value,
            "name": self.name,
            "enabled": self.enabled,
            "endpoint": self.endpoint,
            "settings": dict(self.settings),
            "has_secret": self.has_secret,
            "schedule": self.schedule.to_json(),
            "filter": self.filter.to_json(),
            "delete_after_delivery": self.delete_after_delivery,
            "max_attempts": self.max_attempts,
            "deliver_since": format_timestamp(self.deliver_since),
            "last_enqueued_at": format_timestamp(self.last_enqueued_at),
            "created_at": format_timestamp(self.created_at),
            "updated_at": format_timestamp(self.updated_at),
        }


class TargetStore:
    def __init__(
        self,
        pool: Any,
        provider: KeyProvider,
        *,
        audit: AuditLog,
        clock: Callable[[], datetime],
        id_factory: Callable[[], UUID] = uuid4,
    ) -> None:
        self._pool = pool
        self._provider = provider
        self._audit = audit
        self._clock = clock
        self._new_id = id_factory

    async def create(
        self,
        tenant_id: UUID,
        *,
        kind: TargetKind | str,
        name: str,
        settings: Mapping[str, Any],
        secret: str,
        schedule: Schedule,
        filter: DeliveryFilter | None = None,
        delete_after_delivery: bool = False,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        actor: Actor,
    ) -> DeliveryTarget:
        """A new enabled target; it takes recordings finished from now on (older ones by a backfill).

        :class:`InsecureTargetError` for plain FTP or an SFTP target without a pinned host key,
        :class:`TargetSettingsError` for other bad settings, :class:`ConflictError` for a name the tenant uses."""
        target_kind = TargetKind.parse(kind) if isinstance(kind, str) else kind
        checked = check_settings(target_kind, settings)
        _check_name(name)
        _check_attempts(max_attempts)
        _check_secret(target_kind, checked, secret)
        target_id = self._new_id()
        key_ref, stored = await asyncio.to_thread(seal_secret, self._provider, tenant_id, target_id, secret)
        now = self._clock()
        chosen = filter or DeliveryFilter()
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("create a delivery target"):
                try:
                    row = await conn.fetchrow(
                        _INSERT,
                        target_id,
                        tenant_id,
                        target_kind.value,
                        name,
                        checked,
                        key_ref,
                        stored,
                        schedule.to_json(),
                        chosen.to_json(),
                        delete_after_delivery,
                        max_attempts,
                        now,
                    )
                except asyncpg.UniqueViolationError:
                    raise ConflictError(f"the tenant already has a delivery target named {name!r}") from None
                except asyncpg.ForeignKeyViolationError:
                    raise NotFoundError(f"no tenant {tenant_id}") from None
            target = DeliveryTarget.from_row(row)
            await self._audit.append(conn, _entry(actor, "delivery_target.create", target, {"secret": "set"}))
        return target

    async def get(self, target_id: UUID, *, scope: TargetScope = ALL_TENANTS) -> DeliveryTarget:
        """:class:`NotFoundError` when there is none, or not in ``scope``."""
        with translated("look up a delivery target"):
            row = await self._pool.fetchrow(_GET, target_id, *scope_args(scope))
        if row is None:
            raise NotFoundError(f"no delivery target {target_id}")
        return DeliveryTarget.from_row(row)

    async def find(self, tenant_id: UUID, name: str) -> DeliveryTarget:
        with translated("look up a delivery target"):
            row = await self._pool.fetchrow(_FIND, tenant_id, name.strip().lower())
        if row is None:
            raise NotFoundError(f"the tenant has no delivery target named {name!r}")
        return DeliveryTarget.from_row(row)

    async def list(self, scope: TargetScope = ALL_TENANTS) -> builtins.list[DeliveryTarget]:
        with translated("list delivery targets"):
            rows = await self._pool.fetch(_LIST, *scope_args(scope))
        return [DeliveryTarget.from_row(row) for row in rows]

    async def update(
        self,
        target_id: UUID,
        *,
        actor: Actor,
        settings: Mapping[str, Any] | None = None,
        secret: str | None = None,
        schedule: Schedule | None = None,
        filter: DeliveryFilter | None = None,
        delete_after_delivery: bool | None = None,
        max_attempts: int | None = None,
        scope: TargetScope = ALL_TENANTS,
    ) -> DeliveryTarget:
        """Change what is given; ``settings`` are merged over the stored ones and checked again."""
        current = await self.get(target_id, scope=scope)
        merged = check_settings(current.kind, {**current.settings, **(settings or {})})
        attempts = current.max_attempts if max_attempts is None else max_attempts
        _check_attempts(attempts)
        key_ref = stored = None
        if secret is not None:
            _check_secret(current.kind, merged, secret)
            key_ref, stored = await asyncio.to_thread(
                seal_secret, self._provider, current.tenant_id, current.id, secret
            )
        elif merged.get("auth") != current.settings.get("auth"):
            raise TargetSettingsError("changing how the target logs in needs the new secret too")
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("change a delivery target"):
                row = await conn.fetchrow(
                    _UPDATE,
                    current.id,
                    merged,
                    (schedule or current.schedule).to_json(),
                    (filter or current.filter).to_json(),
                    current.delete_after_delivery if delete_after_delivery is None else delete_after_delivery,
                    attempts,
                    key_ref,
                    stored,
                    self._clock(),
                )
            target = DeliveryTarget.from_row(row)
            changed = sorted(
                name
                for name, given in (
                    ("settings", settings),
                    ("schedule", schedule),
                    ("filter", filter),
                    ("delete_after_delivery", delete_after_delivery),
                    ("max_attempts", max_attempts),
                )
                if given is not None
            )
            details = {"changed": changed, "secret": "changed" if secret is not None else "unchanged"}
            await self._audit.append(conn, _entry(actor, "delivery_target.update", target, details))
        return target

    async def enable(
        self, target_id: UUID, *, actor: Actor, scope: TargetScope = ALL_TENANTS
    ) -> DeliveryTarget:
        return await self._set_enabled(target_id, True, actor, scope)

    async def disable(
        self, target_id: UUID, *, actor: Actor, scope: TargetScope = ALL_TENANTS
    ) -> DeliveryTarget:
        """Stop sending: nothing new is enqueued or claimed for it; what waits stays in the outbox."""
        return await self._set_enabled(target_id, False, actor, scope)

    async def delete(self, target_id: UUID, *, actor: Actor, scope: TargetScope = ALL_TENANTS) -> None:
        """Remove a target that never delivered anything (:class:`LifecycleError` otherwise)."""
        target = await self.get(target_id, scope=scope)
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("remove a delivery target"):
                await conn.execute("SELECT 1 FROM delivery_targets WHERE id = $1 FOR UPDATE", target.id)
                delivered = int(await conn.fetchval(_DELIVERED, target.id))
                if delivered:
                    raise LifecycleError(
                        f"delivery target {target.name!r} delivered {delivered} copies: its log is the record of "
                        "where they went, and erasure notices still go to it (GDPR Art. 19); disable it instead"
                    )
                await conn.execute(_DELETE, target.id)
            await self._audit.append(conn, _entry(actor, "delivery_target.delete", target, {}))

    async def secret(self, target: DeliveryTarget) -> str:
        """The target's password, private key or signing secret, decrypted now. Never log it."""
        with translated("read a delivery target's secret"):
            row = await self._pool.fetchrow(_WRAPPED, target.id)
        if row is None:
            raise NotFoundError(f"no delivery target {target.id}")
        if row["secret_wrapped"] is None:
            raise NotFoundError(f"delivery target {target.name!r} has no secret")
        return await asyncio.to_thread(
            open_secret, self._provider, row["secret_ref"], bytes(row["secret_wrapped"]), target.id
        )

    async def _set_enabled(
        self, target_id: UUID, enabled: bool, actor: Actor, scope: TargetScope
    ) -> DeliveryTarget:
        current = await self.get(target_id, scope=scope)
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("change a delivery target"):
                row = await conn.fetchrow(_ENABLE, current.id, enabled, self._clock())
            target = DeliveryTarget.from_row(row)
            action = "delivery_target.enable" if enabled else "delivery_target.disable"
            await self._audit.append(conn, _entry(actor, action, target, {}))
        return target


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise TargetSettingsError(f"{name!r}: a target name is 1-63 of a-z, 0-9, '-' and '_'")


def _check_attempts(max_attempts: int) -> None:
    if not 1 <= max_attempts <= 100:
        raise TargetSettingsError("max_attempts is 1 to 100")


def _check_secret(kind: TargetKind, settings: Mapping[str, Any], secret: str) -> None:
    if not secret or not secret.strip():
        raise TargetSettingsError("a target needs its secret: the password, private key or signing secret")
    if kind is TargetKind.SFTP and settings.get("auth") == "key" and "PRIVATE KEY-----" not in secret:
        raise TargetSettingsError("with settings.auth 'key' the secret is a private key (OpenSSH or PEM)")


def _entry(actor: Actor, action: str, target: DeliveryTarget, extra: Mapping[str, Any]) -> AuditEntry:
    details: dict[str, Any] = {
        "kind": target.kind.value,
        "name": target.name,
        "endpoint": target.endpoint,
        "enabled": target.enabled,
        "schedule": target.schedule.describe(),
        # numbers are personal data: the audit trail keeps how many, not which
        "filter": {
            "numbers": len(target.filter.numbers),
            "direction": None if target.filter.direction is None else target.filter.direction.value,
            "classes": list(target.filter.classes),
        },
        "delete_after_delivery": target.delete_after_delivery,
        **extra,
    }
    return AuditEntry(
        actor=actor,
        action=action,
        tenant_id=target.tenant_id,
        object_kind="delivery_target",
        object_id=str(target.id),
        details=details,
    )
