"""The audit chain check finds what a database owner could do behind the append-only trigger: an edited entry,
an edited and re-hashed one, a deleted one; an untouched chain of 1,000 entries passes, page after page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from storage.audit import Actor, AuditEntry, AuditLog, StoredEntry, entry_hash
from storage.audit_verify import AuditQuery, ChainProblem, verify_chain

T0 = datetime(2026, 11, 29, 8, 0, 0, 250_000, tzinfo=UTC)
TENANT = uuid4()
OTHER = uuid4()
ANNA = Actor(name="anna@acme.hu", origin="192.0.2.7")
SWEEPER = Actor(name="system:sweeper", origin="server")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1500)
        return self.now


async def _fill(pool: asyncpg.Pool, count: int) -> None:
    """A realistic mix: plays, downloads, exports, policy changes, sweeps, for two tenants."""
    log = AuditLog(clock=Clock())
    async with pool.acquire() as conn, conn.transaction():
        for i in range(count):
            kind = i % 5
            if kind == 4:
                entry = AuditEntry(
                    actor=SWEEPER, action="retention.sweep", details={"deleted": i % 7, "held": 1}
                )
            else:
                entry = AuditEntry(
                    actor=ANNA,
                    action=("recording.play", "recording.download", "recording.export", "policy.change")[
                        kind
                    ],
                    tenant_id=TENANT if i % 3 else OTHER,
                    object_kind="recording" if kind < 3 else "policy",
                    object_id=str(uuid4()) if kind < 3 else str(i),
                    details={"format": "flac", "bytes": 1_379_214 + i, "note": "ügyfél kérésére"},
                )
            await log.append(conn, entry)


async def _as_owner(pool: asyncpg.Pool, statement: str, *args: object) -> None:
    """What a database owner can do: switch the append-only trigger off, change the table, switch it on."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute(statement, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


async def test_an_untouched_chain_of_a_thousand_entries_is_intact(pool: asyncpg.Pool) -> None:
    await _fill(pool, 1000)
    report = await verify_chain(pool, page_size=128)
    assert report.ok and report.problem is None and report.broken_seq is None
    assert (report.entries, report.last_seq) == (1000, 1000)
    assert report.head_hash == await pool.fetchval("SELECT hash FROM audit_log WHERE seq = 1000")
    middle = await verify_chain(pool, from_seq=700, page_size=64)
    assert middle.ok and (middle.entries, middle.from_seq, middle.last_seq) == (301, 700, 1000)
    assert (await verify_chain(pool, from_seq=1001)).entries == 0


async def test_an_empty_log_is_intact(pool: asyncpg.Pool) -> None:
    report = await verify_chain(pool)
    assert report.ok and report.entries == 0 and report.head_hash is None


async def test_an_edited_entry_is_found(pool: asyncpg.Pool) -> None:
    await _fill(pool, 300)
    await _as_owner(pool, """UPDATE audit_log SET details = details || '{"bytes": 1}' WHERE seq = 137""")
    report = await verify_chain(pool, page_size=50)
    assert not report.ok
    assert (report.problem, report.broken_seq, report.entries, report.last_seq) == (
        ChainProblem.HASH,
        137,
        136,
        136,
    )
    assert "entry 137" in (report.detail or "") and "changed" in (report.detail or "")


async def test_an_edited_and_rehashed_entry_breaks_the_link_to_the_next(pool: asyncpg.Pool) -> None:
    await _fill(pool, 300)
    row = await pool.fetchrow("SELECT * FROM audit_log WHERE seq = 42")
    forged = StoredEntry.from_row({**dict(row), "actor": "someone.else@acme.hu"})
    rehashed = entry_hash(
        forged.prev_hash,
        seq=forged.seq,
        at=forged.at,
        tenant_id=forged.tenant_id,
        actor=forged.actor,
        origin=forged.origin,
        action=forged.action,
        object_kind=forged.object_kind,
        object_id=forged.object_id,
        details=forged.details,
    )
    await _as_owner(
        pool, "UPDATE audit_log SET actor = $2, hash = $3 WHERE seq = $1", 42, forged.actor, rehashed
    )
    report = await verify_chain(pool, page_size=50)
    assert (report.problem, report.broken_seq, report.entries) == (ChainProblem.LINK, 43, 42)


async def test_a_deleted_entry_leaves_a_gap(pool: asyncpg.Pool) -> None:
    await _fill(pool, 300)
    await _as_owner(pool, "DELETE FROM audit_log WHERE seq BETWEEN 200 AND 202")
    report = await verify_chain(pool, page_size=64)
    assert (report.problem, report.broken_seq, report.last_seq) == (ChainProblem.GAP, 200, 199)
    assert report.detail == "entries 200-202 missing: deleted from the log"
    # starting right after the gap: the entry it should follow is gone
    after = await verify_chain(pool, from_seq=203)
    assert (after.problem, after.broken_seq) == (ChainProblem.GAP, 202)


async def test_a_deleted_first_entry_is_found(pool: asyncpg.Pool) -> None:
    await _fill(pool, 10)
    await _as_owner(pool, "DELETE FROM audit_log WHERE seq = 1")
    report = await verify_chain(pool)
    assert (report.problem, report.broken_seq, report.entries) == (ChainProblem.GAP, 1, 0)
    assert report.detail == "entry 1 missing: deleted from the log"


async def test_bad_arguments_are_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="start at 1"):
        await verify_chain(pool, from_seq=0)


async def test_the_trail_can_be_listed_by_tenant_object_actor_action_and_time(pool: asyncpg.Pool) -> None:
    await _fill(pool, 50)
    query = AuditQuery(pool)
    newest = await query.list(limit=5)
    assert [entry.seq for entry in newest] == [50, 49, 48, 47, 46]
    older = await query.list(limit=5, before_seq=46)
    assert [entry.seq for entry in older] == [45, 44, 43, 42, 41]

    sweeps = await query.list(action="retention.sweep", limit=100)
    assert len(sweeps) == 10 and {entry.actor for entry in sweeps} == {"system:sweeper"}
    mine = await query.list(tenant_id=TENANT, limit=1000)
    assert mine and all(entry.tenant_id == TENANT for entry in mine)
    exports = await query.list(
        tenant_id=TENANT, object_kind="recording", action="recording.export", limit=1000
    )
    assert exports and all(e.action == "recording.export" and e.object_kind == "recording" for e in exports)
    one = exports[0]
    assert [e.seq for e in await query.list(object_kind="recording", object_id=one.object_id)] == [one.seq]
    assert await query.list(actor="nobody@acme.hu") == []
    window = await query.list(since=T0 + timedelta(seconds=15), until=T0 + timedelta(seconds=30), limit=1000)
    assert [e.seq for e in window] == list(range(19, 9, -1))  # entry n is at T0 + 1.5 s × n
    with pytest.raises(ValueError, match="limit"):
        await query.list(limit=0)
