"""Login rate limiting on the real catalogue, with a clock the test sets: per e-mail, per address, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from storage.login_limit import LoginLimiter, LoginLimits, LoginThrottledError, email_digest

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LIMITS = LoginLimits(per_email=3, per_address=5, window=timedelta(minutes=10), lockout=timedelta(minutes=15))


class Clock:
    def __init__(self) -> None:
        self.current = START

    def __call__(self) -> datetime:
        return self.current


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def limiter(pool: asyncpg.Pool, clock: Clock) -> LoginLimiter:
    await pool.execute("TRUNCATE login_failures")
    return LoginLimiter(pool, limits=LIMITS, clock=clock)


async def locked_for(limiter: LoginLimiter, email: str, address: str) -> timedelta | None:
    try:
        await limiter.check(email, address)
    except LoginThrottledError as exc:
        return exc.retry_after
    return None


async def test_an_e_mail_is_locked_after_its_failures_until_the_lockout_passes(
    limiter: LoginLimiter, clock: Clock
) -> None:
    for minute in (0, 4, 8):
        clock.current = START + timedelta(minutes=minute)
        assert await locked_for(limiter, "eva@acme.example", "192.0.2.1") is None
        await limiter.record_failure("eva@acme.example", "192.0.2.1")
    clock.current = START + timedelta(minutes=9)
    assert await locked_for(limiter, "Eva@Acme.Example", "192.0.2.99") == timedelta(minutes=14)
    clock.current = START + timedelta(minutes=22, seconds=59)
    retry = await locked_for(limiter, "eva@acme.example", "192.0.2.1")
    assert retry == timedelta(seconds=1)
    clock.current = START + timedelta(minutes=23)
    assert await locked_for(limiter, "eva@acme.example", "192.0.2.1") is None
    assert await locked_for(limiter, "anna@acme.example", "192.0.2.1") is None


async def test_failures_spread_wider_than_the_window_do_not_lock(limiter: LoginLimiter, clock: Clock) -> None:
    for minute in (0, 6, 11):
        clock.current = START + timedelta(minutes=minute)
        await limiter.record_failure("eva@acme.example", "192.0.2.1")
    assert await locked_for(limiter, "eva@acme.example", "192.0.2.1") is None


async def test_an_address_trying_many_accounts_is_locked(limiter: LoginLimiter, clock: Clock) -> None:
    for n in range(5):
        clock.current = START + timedelta(seconds=n)
        await limiter.record_failure(f"user{n}@acme.example", "203.0.113.50")
    assert await locked_for(limiter, "someone.else@acme.example", "203.0.113.50") is not None
    assert await locked_for(limiter, "someone.else@acme.example", "203.0.113.51") is None
    assert await locked_for(limiter, "user0@acme.example", "203.0.113.51") is None


async def test_a_success_clears_the_e_mail(limiter: LoginLimiter, pool: asyncpg.Pool) -> None:
    for _ in range(2):
        await limiter.record_failure("eva@acme.example", "192.0.2.1")
    await limiter.record_failure("anna@acme.example", "192.0.2.1")
    await limiter.clear("EVA@acme.example")
    rows = await pool.fetch("SELECT email_hash, address FROM login_failures")
    assert [(bytes(r["email_hash"]), r["address"]) for r in rows] == [
        (email_digest("anna@acme.example"), "192.0.2.1")
    ]


async def test_old_failures_are_forgotten_and_no_e_mail_is_stored(
    limiter: LoginLimiter, clock: Clock, pool: asyncpg.Pool
) -> None:
    await limiter.record_failure("eva@acme.example", "192.0.2.1")
    clock.current = START + timedelta(hours=1)
    await limiter.record_failure("anna@acme.example", "192.0.2.2")
    rows = await pool.fetch("SELECT email_hash, address FROM login_failures")
    assert [(bytes(r["email_hash"]), r["address"]) for r in rows] == [
        (email_digest("anna@acme.example"), "192.0.2.2")
    ]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        LoginLimits(per_email=0)
    with pytest.raises(ValueError, match="positive"):
        LoginLimits(window=timedelta(0))
    assert LoginThrottledError(timedelta(seconds=0.2)).retry_after_seconds == 1
    assert LoginThrottledError(timedelta(seconds=61.5)).retry_after_seconds == 62
