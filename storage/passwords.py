"""Password hashing: argon2id (RFC 9106) through argon2-cffi, and the rules a new password must meet.

Hashing and verifying are deliberately slow (tens of milliseconds, 64 MiB by default): the async methods run
them in a worker thread so the event loop keeps serving. A hash made with older parameters still verifies, and
:meth:`Passwords.needs_rehash` says when to store a fresh one (on the next successful login).
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "Passwords",
    "check_new_password",
    "one_time_password",
]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # a bound on the work one login attempt can cause


def check_new_password(password: str) -> str:
    """The password if it is acceptable as a new one; ValueError saying why not (never echoing it)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if not password.strip():
        raise ValueError("a password cannot be only spaces")
    return password


class Passwords:
    """argon2id hashes. ``hasher`` carries the cost parameters (argon2-cffi's defaults unless given)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the account does not exist, so an unknown e-mail costs the same time.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True if ``password`` matches; False on a mismatch or a hash that cannot be read."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """Was this hash made with other parameters than the current ones?"""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        """Verify in a worker thread; with no hash (no such account) spend the same time and answer False."""
        if password_hash is None:
            await asyncio.to_thread(self.verify, self._decoy, password)
            return False
        return await asyncio.to_thread(self.verify, password_hash, password)


def one_time_password() -> str:
    """A password for a new account, to be changed at first login: 96 random bits, URL-safe."""
    return secrets.token_urlsafe(12)
