"""The retention sweeper with an injected clock: what is due goes, what is held or still recording stays, and
two nodes sweeping at once share the work without deleting anything twice."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage import FileBlobStore, RecordingStatus
from storage.audit import Actor, AuditLog
from storage.disposal import DisposalReason
from storage.errors import CatalogueError
from storage.holds import HoldService
from storage.sweeper import Sweeper, SweepReport

from .retention_samples import T0, Clock, add_recording, key_state, make_tenant, outbox, row

ANNA = Actor(name="anna@example.hu", origin="192.0.2.7")
BELA = Actor(name="bela@example.hu", origin="192.0.2.8")
EXPIRES = T0 + timedelta(days=60)  # quality_60d


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sweeper(pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock) -> Sweeper:
    return Sweeper(pool, blobs, audit=AuditLog(clock=clock), clock=clock, node="node-a")


async def test_a_recording_is_there_the_moment_before_it_expires_and_gone_after(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    call = await add_recording(pool, blobs, tenant_id=acme)
    assert call.path is not None
    clock.now = EXPIRES - timedelta(microseconds=1)
    early = await sweeper.sweep(clock.now)
    assert early.deleted == 0 and await row(pool, call.id) is not None and call.path.exists()
    clock.now = EXPIRES
    report = await sweeper.sweep(clock.now)
    assert report.deleted == 1
    assert [(i.recording_id, i.reason, i.retention_class) for i in report.items] == [
        (call.id, DisposalReason.EXPIRED, "quality_60d")
    ]
    assert await row(pool, call.id) is None and not call.path.exists()
    assert await key_state(pool, call.id) == (False, EXPIRES)
    disposal = await pool.fetchrow("SELECT * FROM disposals")
    assert (disposal["reason"], disposal["disposed_by"], disposal["tenant_id"]) == (
        "expired",
        "sweeper@node-a",
        acme,
    )
    assert await outbox(pool) == [(call.id, "erased")]
    entries = await pool.fetch("SELECT * FROM audit_log WHERE action = 'retention.sweep' ORDER BY seq")
    assert len(entries) == 2  # one per pass, not one per recording
    assert entries[1]["actor"] == "system:sweeper" and entries[1]["origin"] == "node-a"
    assert (
        entries[1]["details"]["deleted"] == 1
        and entries[1]["details"]["as_of"] == "2027-01-27T14:03:07.250000Z"
    )


async def test_a_held_recording_survives_its_expiry_until_two_people_release_it(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    held = await add_recording(pool, blobs, tenant_id=acme)
    free = await add_recording(pool, blobs, tenant_id=acme, numbers=("+36205550123",))
    holds = HoldService(pool, audit=AuditLog(clock=clock), clock=clock)
    hold = await holds.place_on_number(
        acme, "06 1 234 5678", reason="court order 5.P.21.345/2026", actor=ANNA
    )
    clock.now = EXPIRES + timedelta(days=400)
    report = await sweeper.sweep(clock.now)
    assert (report.deleted, report.held) == (1, 1)
    assert await row(pool, held.id) is not None and await row(pool, free.id) is None
    assert held.path is not None and held.path.exists() and (await key_state(pool, held.id))[0]
    await holds.request_release(acme, hold.hold.id, ANNA)
    assert (await sweeper.sweep(clock.now)).held == 1  # asked for, not yet approved
    await holds.approve_release(acme, hold.hold.id, BELA)
    after = await sweeper.sweep(clock.now)
    assert (after.deleted, after.held) == (1, 0) and await row(pool, held.id) is None


async def test_a_refused_consent_call_the_hang_up_missed_is_logged_as_refused(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper
) -> None:
    # the consent ledger brings the expiry forward to the answer; the discard at hang-up never ran
    answered = T0 + timedelta(seconds=6.4)
    refused = await add_recording(
        pool,
        blobs,
        tenant_id=None,
        class_code="consent",
        basis="consent",
        consent_state="refused",
        expires_at=answered,
    )
    report = await sweeper.sweep(T0 + timedelta(minutes=5))
    assert [(i.recording_id, i.reason) for i in report.items] == [
        (refused.id, DisposalReason.CONSENT_REFUSED)
    ]
    assert await pool.fetchval("SELECT reason FROM disposals") == "consent_refused"


async def test_calls_still_recording_and_recordings_without_an_expiry_are_left_alone(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper
) -> None:
    live = await add_recording(
        pool, blobs, tenant_id=None, status=RecordingStatus.RECORDING, class_code="none"
    )
    undecided = await add_recording(pool, blobs, tenant_id=None)
    await pool.execute("UPDATE recordings SET expires_at = NULL WHERE id = $1", undecided.id)
    report = await sweeper.sweep(T0 + timedelta(days=10_000))
    assert report.deleted == 0
    assert await row(pool, live.id) is not None and await row(pool, undecided.id) is not None


async def test_a_dry_run_lists_what_would_go_and_changes_nothing(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper
) -> None:
    due = [
        await add_recording(pool, blobs, tenant_id=None, started_at=T0 + timedelta(hours=h)) for h in range(3)
    ]
    later = await add_recording(pool, blobs, tenant_id=None, class_code="contract_evidence")
    before = {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in _TABLES}
    keys_before = await pool.fetch("SELECT * FROM recording_keys ORDER BY recording_id")
    report = await sweeper.sweep(EXPIRES + timedelta(hours=5), dry_run=True)
    assert report.dry_run and report.deleted == 0
    assert [item.recording_id for item in report.items] == [call.id for call in due]
    assert later.id not in {item.recording_id for item in report.items}
    assert {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in _TABLES} == before
    assert await pool.fetch("SELECT * FROM recording_keys ORDER BY recording_id") == keys_before
    assert all(call.path is not None and call.path.exists() for call in due)
    entry = await pool.fetchrow("SELECT details FROM audit_log WHERE action = 'retention.sweep'")
    assert entry["details"]["dry_run"] is True and entry["details"]["due"] == 3


_TABLES = ("recordings", "disposals", "lifecycle_outbox", "renditions")


async def test_two_nodes_sweeping_at_once_delete_each_recording_exactly_once(
    pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock
) -> None:
    calls = [
        await add_recording(pool, blobs, tenant_id=None, started_at=T0 + timedelta(minutes=i))
        for i in range(200)
    ]
    as_of = EXPIRES + timedelta(days=1)
    node_a = Sweeper(pool, blobs, audit=AuditLog(clock=clock), clock=clock, node="node-a")
    node_b = Sweeper(pool, blobs, audit=AuditLog(clock=clock), clock=clock, node="node-b")
    a, b = await asyncio.gather(node_a.sweep(as_of, batch=10), node_b.sweep(as_of, batch=10))
    assert a.deleted + b.deleted == 200 and a.failed == b.failed == 0
    assert a.deleted > 0 and b.deleted > 0  # both did work: neither waited for the other's batch
    assert not {i.recording_id for i in a.items} & {i.recording_id for i in b.items}
    disposals = await pool.fetch("SELECT recording_id, disposed_by FROM disposals")
    assert len(disposals) == 200 and len({d["recording_id"] for d in disposals}) == 200
    by_node = {
        name: sum(1 for d in disposals if d["disposed_by"] == name)
        for name in ("sweeper@node-a", "sweeper@node-b")
    }
    assert by_node == {"sweeper@node-a": a.deleted, "sweeper@node-b": b.deleted}
    assert await pool.fetchval("SELECT count(*) FROM lifecycle_outbox WHERE event = 'erased'") == 200
    assert await pool.fetchval("SELECT count(*) FROM recordings") == 0
    assert not any(call.path is not None and call.path.exists() for call in calls)


async def test_a_sweep_skips_what_another_node_has_claimed_instead_of_waiting(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper
) -> None:
    calls = [await add_recording(pool, blobs, tenant_id=None) for _ in range(5)]
    claimed = [calls[0].id, calls[3].id]
    async with pool.acquire() as other_node, other_node.transaction():
        await other_node.fetch("SELECT id FROM recordings WHERE id = ANY ($1) FOR UPDATE", claimed)
        report = await asyncio.wait_for(sweeper.sweep(EXPIRES), timeout=30)
        assert {item.recording_id for item in report.items} == {c.id for c in calls} - set(claimed)
    after = await sweeper.sweep(EXPIRES)
    assert {item.recording_id for item in after.items} == set(claimed)


async def test_one_recording_that_cannot_be_removed_does_not_stop_the_others(
    pool: asyncpg.Pool, blobs: FileBlobStore, sweeper: Sweeper, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = await add_recording(pool, blobs, tenant_id=None)
    others = [await add_recording(pool, blobs, tenant_id=None) for _ in range(3)]
    assert stuck.path is not None
    stuck.path.unlink()
    stuck.path.mkdir()  # a directory where the file should be: unlink fails
    (stuck.path / "x").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING, logger="storage.sweeper"):
        report = await sweeper.sweep(EXPIRES, batch=2)
    assert (report.deleted, report.failed) == (3, 1)
    assert await row(pool, stuck.id) is not None
    assert [await row(pool, call.id) for call in others] == [None] * 3
    assert stuck.reference in caplog.text


async def test_the_periodic_sweep_survives_a_failed_pass_and_stops_when_told(
    pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    call = await add_recording(pool, blobs, tenant_id=None)
    clock.now = EXPIRES + timedelta(days=1)
    stop = asyncio.Event()
    passes: list[datetime] = []

    class Flaky(Sweeper):
        async def sweep(self, as_of: datetime, **options: Any) -> SweepReport:
            passes.append(as_of)
            if len(passes) == 1:
                raise CatalogueError("cannot claim recordings due for deletion: connection reset")
            try:
                return await super().sweep(as_of, **options)
            finally:
                stop.set()

    flaky = Flaky(pool, blobs, audit=AuditLog(clock=clock), clock=clock, node="node-a")
    reports: list[SweepReport] = []
    with caplog.at_level(logging.ERROR, logger="storage.sweeper"):
        await asyncio.wait_for(flaky.run_periodically(0.001, stop, on_report=reports.append), timeout=30)
    assert passes == [clock.now, clock.now]
    assert [(r.deleted, r.failed, r.held) for r in reports] == [(1, 0, 0)]  # the failed pass reports nothing
    assert "connection reset" in caplog.text
    assert await row(pool, call.id) is None
    with pytest.raises(ValueError, match="positive"):
        await flaky.run_periodically(0, stop)


async def test_the_sweep_needs_an_aware_time(sweeper: Sweeper) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await sweeper.sweep(datetime(2027, 1, 28))
