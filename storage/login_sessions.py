"""Login sessions of the portal: a random token in an HttpOnly cookie, kept here only as its SHA-256.

A session ends at its absolute expiry, after ``idle`` without a request, when its user logs out, or when the
user is disabled (:func:`revoke_user_sessions`, in the same transaction). Every request re-reads the user, so
a role change or a disabled account takes effect at once. ``last_seen_at`` is written at most once per
``touch_every``, so an idle expiry may come up to that much later than ``idle`` after the last request.

Each session has a CSRF token (kept as its SHA-256 too) that the portal echoes in ``X-CSRF-Token`` on unsafe
requests; :meth:`ActiveSession.csrf_matches` compares in constant time. Logins and logouts are audited
(``session.login``, ``session.logout``) with the session's id, never its token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from .audit import Actor, AuditEntry, AuditLog
from .errors import translated
from .principal import Principal, Role

if TYPE_CHECKING:
    from .users import User

__all__ = ["ActiveSession", "LoginSessions", "SessionLimits", "revoke_user_sessions", "token_digest"]

_MAX_TOKEN = 200  # longer cookie values are not ours: not looked up


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)
    touch_every: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.touch_every < self.idle <= self.absolute:
            raise ValueError("session limits need 0 < touch_every < idle <= absolute")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveSession:
    id: UUID
    principal: Principal
    must_change_password: bool
    created_at: datetime
    expires_at: datetime
    csrf_hash: bytes

    def csrf_matches(self, token: str | None) -> bool:
        """Is ``token`` this session's CSRF token? Constant time in the token's content."""
        if not token or len(token) > _MAX_TOKEN:
            return False
        return hmac.compare_digest(token_digest(token), self.csrf_hash)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def revoke_user_sessions(conn: Any, user_id: UUID, at: datetime, *, keep: UUID | None = None) -> int:
    """End every live session of the user (but ``keep``) inside the caller's transaction; how many ended."""
    result: str = await conn.execute(
        """
        UPDATE login_sessions SET revoked_at = $2
        WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3)
        """,
        user_id,
        at,
        keep,
    )
    return int(result.rsplit(" ", 1)[-1])


class LoginSessions:
    def __init__(
        self,
        pool: Any,
        audit: AuditLog,
        *,
        limits: SessionLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._audit = audit
        self.limits = limits or SessionLimits()
        self._clock = clock

    async def create(self, user: User, *, origin: str | None = None) -> tuple[str, str]:
        """A new session for a user who just proved who they are: (session token, CSRF token). Audited
        ``session.login``. Neither token is stored; the caller hands them to the browser."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session_id = uuid4()
        now = self._clock()
        with translated("create a login session"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO login_sessions (id, token_hash, user_id, csrf_hash, origin, created_at,
                                                expires_at, last_seen_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $6)
                    """,
                    session_id,
                    token_digest(token),
                    user.id,
                    token_digest(csrf),
                    origin,
                    now,
                    now + self.limits.absolute,
                )
                await conn.execute("UPDATE users SET last_login_at = $2 WHERE id = $1", user.id, now)
                await self._audit.append(
                    conn,
                    AuditEntry(
                        actor=Actor(name=user.email, origin=origin),
                        action="session.login",
                        tenant_id=user.tenant_id,
                        object_kind="user",
                        object_id=str(user.id),
                        details={"session_id": str(session_id), "role": user.role.value},
                    ),
                )
        return token, csrf

    async def resolve_session(self, token: str | None) -> ActiveSession | None:
        """The live session of a cookie's token, or None (unknown, revoked, expired, idle, user disabled)."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        now = self._clock()
        with translated("look up a login session"):
            row = await self._pool.fetchrow(
                """
                SELECT s.id, s.csrf_hash, s.created_at, s.expires_at, s.last_seen_at,
                       u.id AS user_id, u.tenant_id, u.email, u.role, u.must_change_password
                FROM login_sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND u.disabled_at IS NULL
                """,
                token_digest(token),
            )
            if row is None or now >= row["expires_at"] or now - row["last_seen_at"] >= self.limits.idle:
                return None
            if now - row["last_seen_at"] >= self.limits.touch_every:
                await self._pool.execute(
                    "UPDATE login_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
                    row["id"],
                    now,
                )
        return _session(row)

    async def resolve(self, token: str | None) -> Principal | None:
        session = await self.resolve_session(token)
        return None if session is None else session.principal

    async def revoke(self, token: str, *, origin: str | None = None) -> bool:
        """Log out: end the session of this token (audited ``session.logout``). False if it was not live."""
        if not token or len(token) > _MAX_TOKEN:
            return False
        now = self._clock()
        with translated("end a login session"):
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    """
                    UPDATE login_sessions s SET revoked_at = $2
                    FROM users u
                    WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND u.id = s.user_id
                    RETURNING s.id, u.id AS user_id, u.tenant_id, u.email
                    """,
                    token_digest(token),
                    now,
                )
                if row is None:
                    return False
                await self._audit.append(
                    conn,
                    AuditEntry(
                        actor=Actor(name=row["email"], origin=origin),
                        action="session.logout",
                        tenant_id=row["tenant_id"],
                        object_kind="user",
                        object_id=str(row["user_id"]),
                        details={"session_id": str(row["id"])},
                    ),
                )
        return True

    async def revoke_others(self, user_id: UUID, keep: UUID | None) -> int:
        """End the user's other sessions (after a password change); how many ended."""
        with translated("end login sessions"):
            async with self._pool.acquire() as conn, conn.transaction():
                return await revoke_user_sessions(conn, user_id, self._clock(), keep=keep)


def _session(row: Mapping[str, Any]) -> ActiveSession:
    return ActiveSession(
        id=row["id"],
        principal=Principal(
            tenant_id=row["tenant_id"],
            role=Role(row["role"]),
            name=row["email"],
            user_id=row["user_id"],
        ),
        must_change_password=row["must_change_password"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        csrf_hash=bytes(row["csrf_hash"]),
    )
