"""The audit trail appends in the caller's transaction, chains hashes, and refuses edits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from storage.audit import GENESIS, Actor, AuditEntry, AuditLog, StoredEntry
from storage.errors import CatalogueError

T0 = datetime(2026, 11, 29, 8, 0, 0, 123456, tzinfo=UTC)


def _clock() -> datetime:
    _clock.now += timedelta(seconds=1)  # type: ignore[attr-defined]
    return _clock.now  # type: ignore[attr-defined, no-any-return]


_clock.now = T0  # type: ignore[attr-defined]


async def test_entries_chain_and_survive_a_round_trip(pool: asyncpg.Pool) -> None:
    log = AuditLog(clock=_clock)
    tenant = uuid4()
    anna = Actor(name="anna@example.hu", origin="192.0.2.7")
    first = await log.record(
        pool,
        AuditEntry(
            actor=anna,
            action="recording.play",
            tenant_id=tenant,
            object_kind="recording",
            object_id="HT-7K3M-Q9RX",
        ),
    )
    second = await log.record(
        pool,
        AuditEntry(
            actor=anna,
            action="recording.download",
            tenant_id=tenant,
            object_kind="recording",
            object_id="HT-7K3M-Q9RX",
            details={"format": "flac", "bytes": 881234, "ok": True},
        ),
    )
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    rows = await pool.fetch("SELECT * FROM audit_log ORDER BY seq")
    stored = [StoredEntry.from_row(row) for row in rows]
    assert [entry.expected_hash() for entry in stored] == [entry.hash for entry in stored]
    assert stored[1].details == {"format": "flac", "bytes": 881234, "ok": True}


async def test_an_entry_rolls_back_with_its_action(pool: asyncpg.Pool) -> None:
    log = AuditLog(clock=_clock)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await log.append(conn, AuditEntry(actor=Actor(name="system:sweeper"), action="retention.sweep"))
            raise RuntimeError("the sweep failed")
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_append_outside_a_transaction_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(CatalogueError, match="inside the transaction"):
            await AuditLog().append(conn, AuditEntry(actor=Actor(name="cli:root"), action="audit.verify"))


async def test_the_table_refuses_updates_and_deletes(pool: asyncpg.Pool) -> None:
    await AuditLog().record(pool, AuditEntry(actor=Actor(name="cli:root"), action="policy.change"))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute("UPDATE audit_log SET actor = 'someone else'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute("DELETE FROM audit_log")
