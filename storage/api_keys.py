"""API keys: how machines authenticate to the REST API, one role each, for one tenant.

A key is ``htk_<prefix>_<secret>``: an 8-hex-digit prefix that stays visible (to tell keys apart in a list)
and 32 random bytes. It is shown once, when created; the catalogue keeps its SHA-256 (a fast hash is right
for 256 random bits: there is nothing to guess). A revoked key stops working at once. Every method acting on
a key takes the tenant's id: another tenant's key is :class:`~storage.errors.NotFoundError`. Creating and
revoking are audited (``api_key.create``, ``api_key.revoke``) with the key's id and prefix, never the secret.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .audit import Actor, AuditEntry, AuditLog
from .errors import ConflictError, NotFoundError, translated
from .principal import Principal, Role

__all__ = ["KEY_PREFIX", "ApiKey", "ApiKeyStore"]

KEY_PREFIX = "htk_"
_KEY = re.compile(r"^htk_(?P<prefix>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{43})$")
_COLUMNS = "id, tenant_id, name, role, prefix, created_by, created_at, last_used_at, revoked_at"
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A key as listed: never its secret."""

    id: UUID
    tenant_id: UUID
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def principal(self) -> Principal:
        return Principal(
            tenant_id=self.tenant_id, role=self.role, name=f"api-key:{self.name}", api_key_id=self.id
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ApiKey:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            role=Role(row["role"]),
            prefix=row["prefix"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "name": self.name,
            "role": self.role.value,
            "prefix": self.prefix,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
        }


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _name(name: str) -> str:
    clean = " ".join(name.split())
    if not 1 <= len(clean) <= 100:
        raise ValueError("an API key's name is 1-100 characters")
    return clean


class ApiKeyStore:
    def __init__(
        self, pool: Any, audit: AuditLog, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._clock = clock

    async def create(self, tenant_id: UUID, name: str, role: Role, actor: Actor) -> tuple[ApiKey, str]:
        """A new key and its secret ``htk_<prefix>_<secret>``, which is shown once and stored only hashed."""
        name, role = _name(name), Role(role)
        now = self._clock()
        with translated("create an API key"):
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id):
                    raise NotFoundError(f"no tenant {str(tenant_id)!r}")
                if await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM api_keys WHERE tenant_id = $1 AND name = $2 "
                    "AND revoked_at IS NULL)",
                    tenant_id,
                    name,
                ):
                    raise ConflictError(f"an API key named {name!r} already exists")
                for _attempt in range(5):  # a prefix collision (1 in 4 billion per key) picks another
                    prefix = secrets.token_hex(4)
                    secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
                    try:
                        async with conn.transaction():
                            row = await conn.fetchrow(
                                f"""
                                INSERT INTO api_keys (id, tenant_id, name, role, prefix, secret_hash, created_by,
                                                      created_at)
                                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                                RETURNING {_COLUMNS}
                                """,  # noqa: S608 (constant column list)
                                uuid4(),
                                tenant_id,
                                name,
                                role.value,
                                prefix,
                                _digest(secret),
                                actor.name,
                                now,
                            )
                        break
                    except asyncpg.UniqueViolationError:
                        continue
                else:  # pragma: no cover - five collisions in a row
                    raise ConflictError("could not pick a free key prefix; try again")
                key = ApiKey.from_row(row)
                await self._log(
                    conn,
                    actor,
                    "api_key.create",
                    key,
                    {"name": key.name, "role": role.value, "prefix": prefix},
                )
        return key, secret

    async def get(self, tenant_id: UUID, key_id: UUID) -> ApiKey:
        with translated("look up an API key"):
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1 AND tenant_id = $2",  # noqa: S608
                key_id,
                tenant_id,
            )
        if row is None:
            raise NotFoundError("no such API key")
        return ApiKey.from_row(row)

    async def find(self, tenant_id: UUID, id_or_prefix: str) -> ApiKey:
        """The tenant's key by its id or its prefix (as listed, with or without ``htk_``)."""
        text = id_or_prefix.strip().removeprefix(KEY_PREFIX).split("_", 1)[0].lower()
        try:
            return await self.get(tenant_id, UUID(text))
        except ValueError:
            pass
        with translated("look up an API key"):
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = $1 AND tenant_id = $2",  # noqa: S608
                text,
                tenant_id,
            )
        if row is None:
            raise NotFoundError("no such API key")
        return ApiKey.from_row(row)

    async def list(
        self,
        tenant_id: UUID,
        *,
        after: tuple[datetime, UUID] | None = None,
        limit: int | None = None,
    ) -> builtins.list[ApiKey]:
        """The tenant's keys, revoked ones too, newest first; ``after`` (created_at, id) for the next page."""
        since, since_id = after if after is not None else (None, None)
        with translated("list API keys"):
            rows = await self._pool.fetch(
                f"""
                SELECT {_COLUMNS} FROM api_keys
                WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
                ORDER BY created_at DESC, id DESC LIMIT $4
                """,  # noqa: S608
                tenant_id,
                since,
                since_id,
                limit,
            )
        return [ApiKey.from_row(row) for row in rows]

    async def revoke(self, tenant_id: UUID, key_id: UUID, actor: Actor) -> ApiKey:
        """Revoke at once; revoking a revoked key changes nothing."""
        with translated("revoke an API key"):
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    f"""
                    UPDATE api_keys SET revoked_at = $3
                    WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL
                    RETURNING {_COLUMNS}
                    """,  # noqa: S608
                    key_id,
                    tenant_id,
                    self._clock(),
                )
                if row is None:
                    return await self.get(tenant_id, key_id)
                key = ApiKey.from_row(row)
                await self._log(conn, actor, "api_key.revoke", key, {"name": key.name, "prefix": key.prefix})
        return key

    async def resolve(self, secret: str | None) -> Principal | None:
        """The principal of a live key, or None (malformed, unknown or revoked)."""
        if not secret:
            return None
        match = _KEY.match(secret)
        if match is None:
            return None
        now = self._clock()
        with translated("look up an API key"):
            row = await self._pool.fetchrow(
                f"""
                SELECT {_COLUMNS} FROM api_keys
                WHERE secret_hash = $1 AND prefix = $2 AND revoked_at IS NULL
                """,  # noqa: S608
                _digest(secret),
                match["prefix"],
            )
            if row is None:
                return None
            key = ApiKey.from_row(row)
            if key.last_used_at is None or now - key.last_used_at >= _TOUCH_EVERY:
                await self._pool.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", key.id, now)
        return key.principal

    async def _log(self, conn: Any, actor: Actor, action: str, key: ApiKey, details: dict[str, Any]) -> None:
        await self._audit.append(
            conn,
            AuditEntry(
                actor=actor,
                action=action,
                tenant_id=key.tenant_id,
                object_kind="api_key",
                object_id=str(key.id),
                details=details,
            ),
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
