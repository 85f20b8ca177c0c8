"""A tenant's users: accounts of the portal and the API, with one role each and an argon2 password hash.

A new account gets a one-time password, shown once to whoever created it, and must change it at first login
(``must_change_password``). E-mails are unique across every tenant regardless of case (a login names only the
e-mail); they are stored lower-cased. Every method acting on a user takes the tenant's id: another tenant's
user is :class:`~storage.errors.NotFoundError`, exactly like a missing one. A tenant always keeps one active
admin: disabling or demoting the last one is refused.

Every change is audited in its transaction (``user.create``, ``user.role_change``, ``user.disable``,
``user.password_change``), and so is every failed login (``session.login_failed``, with the reason and never
the password, nor what was typed as the e-mail when no such account exists).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .audit import Actor, AuditEntry, AuditLog
from .errors import ConflictError, NotFoundError, translated
from .login_limit import LoginLimiter, LoginThrottledError
from .login_sessions import revoke_user_sessions
from .passwords import Passwords, check_new_password, one_time_password
from .principal import Principal, Role

__all__ = ["User", "UserStore", "normalize_email"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")  # as the users_email_format CHECK
_COLUMNS = "id, tenant_id, email, role, must_change_password, disabled_at, created_at, last_login_at"
_ANONYMOUS = "anonymous"  # the actor of a failed login naming no account


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """An account as the services see it. The password hash is not part of it, so it never travels."""

    id: UUID
    tenant_id: UUID
    email: str
    role: Role
    must_change_password: bool
    disabled_at: datetime | None
    created_at: datetime
    last_login_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @property
    def principal(self) -> Principal:
        return Principal(tenant_id=self.tenant_id, role=self.role, name=self.email, user_id=self.id)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> User:
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            email=row["email"],
            role=Role(row["role"]),
            must_change_password=row["must_change_password"],
            disabled_at=row["disabled_at"],
            created_at=row["created_at"],
            last_login_at=row["last_login_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "tenant_id": str(self.tenant_id),
            "email": self.email,
            "role": self.role.value,
            "must_change_password": self.must_change_password,
            "disabled_at": _iso(self.disabled_at),
            "created_at": _iso(self.created_at),
            "last_login_at": _iso(self.last_login_at),
        }


def normalize_email(email: str) -> str:
    """The stored form of an e-mail (trimmed, lower-case); ValueError if it is not one."""
    clean = email.strip().lower()
    if len(clean) > 254 or not _EMAIL.match(clean):
        raise ValueError("not an e-mail address")
    return clean


class UserStore:
    def __init__(
        self,
        pool: Any,
        audit: AuditLog,
        *,
        passwords: Passwords,
        limiter: LoginLimiter,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._passwords = passwords
        self._limiter = limiter
        self._clock = clock

    # -- accounts ---------------------------------------------------------------------------------------------
    async def create(self, tenant_id: UUID, email: str, role: Role, actor: Actor) -> tuple[User, str]:
        """A new account of the tenant and its one-time password (shown once; stored only as a hash)."""
        email = normalize_email(email)
        role = Role(role)
        password = one_time_password()
        password_hash = await self._passwords.hash_async(password)
        now = self._clock()
        with translated("create a user"):
            async with self._pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id):
                    raise NotFoundError(f"no tenant {str(tenant_id)!r}")
                try:
                    row = await conn.fetchrow(
                        f"""
                        INSERT INTO users (id, tenant_id, email, role, password_hash, must_change_password,
                                           created_at)
                        VALUES ($1, $2, $3, $4, $5, true, $6)
                        RETURNING {_COLUMNS}
                        """,  # noqa: S608 (constant column list)
                        uuid4(),
                        tenant_id,
                        email,
                        role.value,
                        password_hash,
                        now,
                    )
                except asyncpg.UniqueViolationError as exc:
                    raise ConflictError("a user with this e-mail already exists") from exc
                user = User.from_row(row)
                await self._log(conn, actor, "user.create", user, {"email": user.email, "role": role.value})
        return user, password

    async def get(self, tenant_id: UUID, user_id: UUID) -> User:
        with translated("look up a user"):
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM users WHERE id = $1 AND tenant_id = $2",  # noqa: S608
                user_id,
                tenant_id,
            )
        if row is None:
            raise NotFoundError("no such user")
        return User.from_row(row)

    async def find(self, tenant_id: UUID, email: str) -> User:
        """The tenant's user with this e-mail (any case)."""
        try:
            clean = normalize_email(email)
        except ValueError as exc:
            raise NotFoundError("no such user") from exc
        with translated("look up a user"):
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM users WHERE email = $1 AND tenant_id = $2",  # noqa: S608
                clean,
                tenant_id,
            )
        if row is None:
            raise NotFoundError("no such user")
        return User.from_row(row)

    async def list(
        self, tenant_id: UUID, *, after: str | None = None, limit: int | None = None
    ) -> builtins.list[User]:
        """The tenant's users by e-mail; ``after`` an e-mail for the next page."""
        with translated("list users"):
            rows = await self._pool.fetch(
                f"""
                SELECT {_COLUMNS} FROM users
                WHERE tenant_id = $1 AND ($2::text IS NULL OR email > $2)
                ORDER BY email LIMIT $3
                """,  # noqa: S608
                tenant_id,
                after,
                limit,
            )
        return [User.from_row(row) for row in rows]

    async def set_role(self, tenant_id: UUID, user_id: UUID, role: Role, actor: Actor) -> User:
        role = Role(role)
        with translated("change a user's role"):
            async with self._pool.acquire() as conn, conn.transaction():
                old = await self._locked(conn, tenant_id, user_id)
                if old.role is role:
                    return old
                if old.role is Role.ADMIN and old.active:
                    await self._keep_an_admin(conn, old, "demoted")
                row = await conn.fetchrow(
                    f"UPDATE users SET role = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
                    user_id,
                    role.value,
                )
                user = User.from_row(row)
                await self._log(
                    conn, actor, "user.role_change", user, {"old": old.role.value, "new": role.value}
                )
        return user

    async def disable(self, tenant_id: UUID, user_id: UUID, actor: Actor) -> User:
        """Disable the account and end its sessions at once. Disabling a disabled account changes nothing."""
        now = self._clock()
        with translated("disable a user"):
            async with self._pool.acquire() as conn, conn.transaction():
                old = await self._locked(conn, tenant_id, user_id)
                if not old.active:
                    return old
                if old.role is Role.ADMIN:
                    await self._keep_an_admin(conn, old, "disabled")
                row = await conn.fetchrow(
                    f"UPDATE users SET disabled_at = $2 WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
                    user_id,
                    now,
                )
                ended = await revoke_user_sessions(conn, user_id, now)
                user = User.from_row(row)
                await self._log(conn, actor, "user.disable", user, {"sessions_ended": ended})
        return user

    # -- passwords --------------------------------------------------------------------------------------------
    async def authenticate(self, email: str, password: str, origin: str) -> User | None:
        """The active user with this e-mail and password, or None (one answer for every reason, so a caller
        learns nothing about which accounts exist). :class:`LoginThrottledError` when too many logins failed
        for this e-mail or from ``origin``: then the password is not checked at all."""
        try:
            clean = normalize_email(email)
        except ValueError:
            clean = None
        key = clean if clean is not None else email
        with translated("look up a user"):
            row = (
                None
                if clean is None
                else await self._pool.fetchrow(
                    f"SELECT {_COLUMNS}, password_hash FROM users WHERE email = $1",  # noqa: S608
                    clean,
                )
            )
        user = None if row is None else User.from_row(row)
        try:
            await self._limiter.check(key, origin)
        except LoginThrottledError:
            await self._failed(user, origin, "rate_limited")
            raise
        stored: str | None = None if row is None else row["password_hash"]
        matches = await self._passwords.verify_async(stored, password)
        if user is None or stored is None or not matches or not user.active:
            await self._limiter.record_failure(key, origin)
            reason = "unknown_account" if user is None else "wrong_password" if not matches else "disabled"
            await self._failed(user, origin, reason)
            return None
        await self._limiter.clear(key)
        if self._passwords.needs_rehash(stored):
            new_hash = await self._passwords.hash_async(password)
            with translated("store a password hash"):
                await self._pool.execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
                    user.id,
                    new_hash,
                    stored,
                )
        return user

    async def change_password(
        self, tenant_id: UUID, user_id: UUID, current: str, new: str, actor: Actor
    ) -> User:
        """Replace the password after checking the current one; clears ``must_change_password``. A wrong
        current password counts as a failed login (for the e-mail and ``actor.origin``), so a stolen session
        cannot be used to guess it."""
        check_new_password(new)
        if new == current:
            raise ValueError("the new password must differ from the current one")
        with translated("look up a user"):
            found = await self._pool.fetchrow(
                "SELECT email, password_hash FROM users WHERE id = $1 AND tenant_id = $2 AND disabled_at IS NULL",
                user_id,
                tenant_id,
            )
        if found is None:
            raise NotFoundError("no such user")
        stored: str = found["password_hash"]
        origin = actor.origin or "unknown"
        await self._limiter.check(found["email"], origin)
        if not await self._passwords.verify_async(stored, current):
            await self._limiter.record_failure(found["email"], origin)
            raise ValueError("the current password is not correct")
        new_hash = await self._passwords.hash_async(new)
        with translated("change a password"):
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    f"""
                    UPDATE users SET password_hash = $3, must_change_password = false, password_changed_at = $4
                    WHERE id = $1 AND tenant_id = $2 AND password_hash = $5
                    RETURNING {_COLUMNS}
                    """,  # noqa: S608
                    user_id,
                    tenant_id,
                    new_hash,
                    self._clock(),
                    stored,
                )
                if row is None:
                    raise ConflictError("the password was changed meanwhile; try again")
                user = User.from_row(row)
                await self._log(conn, actor, "user.password_change", user, {})
        return user

    # -- helpers ----------------------------------------------------------------------------------------------
    async def _locked(self, conn: Any, tenant_id: UUID, user_id: UUID) -> User:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM users WHERE id = $1 AND tenant_id = $2 FOR UPDATE",  # noqa: S608
            user_id,
            tenant_id,
        )
        if row is None:
            raise NotFoundError("no such user")
        return User.from_row(row)

    async def _keep_an_admin(self, conn: Any, user: User, verb: str) -> None:
        # One admin change per tenant at a time, so two concurrent ones cannot each leave the other as the last.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('hangtar-admins:' || $1::uuid::text, 0))",
            user.tenant_id,
        )
        others = await conn.fetchval(
            """
            SELECT count(*) FROM users
            WHERE tenant_id = $1 AND role = 'admin' AND disabled_at IS NULL AND id <> $2
            """,
            user.tenant_id,
            user.id,
        )
        if not others:
            raise ConflictError(f"the tenant's last active admin cannot be {verb}")

    async def _failed(self, user: User | None, origin: str, reason: str) -> None:
        # What was typed as the e-mail is not recorded when it names no account (it may be a password).
        entry = AuditEntry(
            actor=Actor(name=_ANONYMOUS if user is None else user.email, origin=origin),
            action="session.login_failed",
            tenant_id=None if user is None else user.tenant_id,
            object_kind=None if user is None else "user",
            object_id=None if user is None else str(user.id),
            details={"reason": reason},
        )
        await self._audit.record(self._pool, entry)

    async def _log(self, conn: Any, actor: Actor, action: str, user: User, details: dict[str, Any]) -> None:
        await self._audit.append(
            conn,
            AuditEntry(
                actor=actor,
                action=action,
                tenant_id=user.tenant_id,
                object_kind="user",
                object_id=str(user.id),
                details=details,
            ),
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
