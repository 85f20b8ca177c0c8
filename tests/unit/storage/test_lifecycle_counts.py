"""The operator's counts of holds and access requests: in force, waiting for a second person, unanswered,
overdue — over every tenant, from the real catalogue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg

from storage.lifecycle_counts import LifecycleCounts, lifecycle_counts

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


async def _hold(pool: asyncpg.Pool, *, requested: bool = False, released: bool = False) -> None:
    await pool.execute(
        """
        INSERT INTO holds (id, number, reason, placed_by, release_requested_by, release_requested_at,
                           released_by, released_at)
        VALUES ($1, '+3612345678', 'litigation', 'dora@acme.example', $2, $3, $4, $5)
        """,
        uuid4(),
        "anna@acme.example" if requested or released else None,
        NOW if requested or released else None,
        "bela@acme.example" if released else None,
        NOW if released else None,
    )


async def _request(pool: asyncpg.Pool, status: str, due: datetime) -> None:
    await pool.execute(
        """
        INSERT INTO access_requests (id, number, requester, received_at, due_at, status, created_by)
        VALUES ($1, '+36301234567', 'by e-mail', $2, $3, $4, 'dora@acme.example')
        """,
        uuid4(),
        due - timedelta(days=30),
        due,
        status,
    )


async def test_holds_and_access_requests_are_counted_by_state(pool: asyncpg.Pool) -> None:
    assert await lifecycle_counts(pool, NOW) == LifecycleCounts(
        holds=0, holds_release_requested=0, requests_open=0, requests_overdue=0
    )
    await _hold(pool)
    await _hold(pool, requested=True)
    await _hold(pool, released=True)  # released: no longer in force
    await _request(pool, "open", NOW + timedelta(days=3))
    await _request(pool, "open", NOW - timedelta(days=1))  # past its deadline
    await _request(pool, "exported", NOW - timedelta(hours=1))  # exported but not delivered: still unanswered
    await _request(pool, "delivered", NOW - timedelta(days=10))  # answered
    assert await lifecycle_counts(pool, NOW) == LifecycleCounts(
        holds=2, holds_release_requested=1, requests_open=3, requests_overdue=2
    )
