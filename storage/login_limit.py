"""Login rate limiting: too many failed logins for one e-mail, or from one client address, lock it out.

Failures are rows in ``login_failures`` (migration 0006), so every node counts the same ones. A key (an
e-mail, or an address) is locked when its ``max_failures`` most recent failures all fall within ``window`` of
the newest; the lock lasts ``lockout`` from that newest failure. Attempts refused while locked are not
counted (the password is not even checked), so an attacker cannot keep a victim's account locked for ever by
hammering it, only for as long as the failures keep coming once each lock ends. A successful login clears the
e-mail's failures; the address keeps its count (one address trying many accounts is the attack it catches).

The e-mail is kept as the SHA-256 of its lower-cased form: what someone typed is never stored.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import StorageError, translated

__all__ = ["LoginLimiter", "LoginLimits", "LoginThrottledError", "email_digest"]


class LoginThrottledError(StorageError):
    """Too many failed logins: refused without checking the password until ``retry_after`` has passed."""

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("too many failed logins; try again later")
        self.retry_after = retry_after

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds, rounded up (for an HTTP ``Retry-After``), at least 1."""
        return max(1, math.ceil(self.retry_after.total_seconds()))


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginLimits:
    per_email: int = 5  # failures for one e-mail ...
    per_address: int = 20  # ... or from one client address ...
    window: timedelta = timedelta(minutes=15)  # ... within this long ...
    lockout: timedelta = timedelta(minutes=15)  # ... lock it for this long after the last of them

    def __post_init__(self) -> None:
        if self.per_email < 1 or self.per_address < 1:
            raise ValueError("login limits need at least one allowed failure")
        if self.window <= timedelta(0) or self.lockout <= timedelta(0):
            raise ValueError("the login window and lockout must be positive")


def email_digest(email: str) -> bytes:
    return hashlib.sha256(email.strip().lower().encode()).digest()


class LoginLimiter:
    def __init__(
        self,
        pool: Any,
        *,
        limits: LoginLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self.limits = limits or LoginLimits()
        self._clock = clock

    async def check(self, email: str, address: str) -> None:
        """Raise :class:`LoginThrottledError` if the e-mail or the address is locked now."""
        now = self._clock()
        limits = self.limits
        with translated("check the login limits"):
            by_email = await self._pool.fetch(
                "SELECT at FROM login_failures WHERE email_hash = $1 ORDER BY at DESC LIMIT $2",
                email_digest(email),
                limits.per_email,
            )
            by_address = await self._pool.fetch(
                "SELECT at FROM login_failures WHERE address = $1 ORDER BY at DESC LIMIT $2",
                address,
                limits.per_address,
            )
        until = max(
            self._locked_until([row["at"] for row in by_email], limits.per_email),
            self._locked_until([row["at"] for row in by_address], limits.per_address),
        )
        if until > now:
            raise LoginThrottledError(until - now)

    async def record_failure(self, email: str, address: str) -> None:
        """Count one failed login; forget failures too old to matter any more."""
        now = self._clock()
        horizon = now - self.limits.window - self.limits.lockout
        with translated("record a failed login"):
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM login_failures WHERE at < $1", horizon)
                await conn.execute(
                    "INSERT INTO login_failures (email_hash, address, at) VALUES ($1, $2, $3)",
                    email_digest(email),
                    address,
                    now,
                )

    async def clear(self, email: str) -> None:
        """Forget the e-mail's failures (after a successful login)."""
        with translated("clear failed logins"):
            await self._pool.execute("DELETE FROM login_failures WHERE email_hash = $1", email_digest(email))

    def _locked_until(self, newest_first: list[datetime], allowed: int) -> datetime:
        if len(newest_first) < allowed or newest_first[0] - newest_first[-1] > self.limits.window:
            return datetime.min.replace(tzinfo=UTC)
        return newest_first[0] + self.limits.lockout
