"""The delivery outbox against a real catalogue, with an injected clock: what a target takes and when, claims
that two nodes never share, leases that run out, retries, dead letters and replays, and erasure and restriction
notices for recordings already delivered."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta
from pathlib import Path

import asyncpg
import pytest

from storage import FileBlobStore, RecordingStatus
from storage.audit import Actor, AuditLog
from storage.delivery_filter import DeliveryFilter
from storage.delivery_items import AttemptResult, DeliveryKind, DeliveryStatus, idempotency_key
from storage.delivery_outbox import Outbox
from storage.delivery_schedule import Schedule
from storage.delivery_targets import DeliveryTarget, TargetStore
from storage.erasure import ErasureService
from storage.errors import LifecycleError
from storage.holds import HoldService
from storage.keyfile import KeyFileProvider
from storage.sweeper import Sweeper
from tests.unit.delivery.samples import CREATED, OPERATOR, add_target, set_direction, set_status

from .retention_samples import CALLEE, CALLER, OTHER, T0, Clock, add_recording, make_tenant

LEASE = timedelta(minutes=10)
BELA = Actor(name="bela@example.hu", origin="192.0.2.8")
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def clock() -> Clock:
    return Clock(CREATED)


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def store(pool: asyncpg.Pool, tmp_path: Path, clock: Clock) -> TargetStore:
    return TargetStore(
        pool, KeyFileProvider(tmp_path / "keys.json"), audit=AuditLog(clock=clock), clock=clock
    )


@pytest.fixture
def outbox(pool: asyncpg.Pool, clock: Clock) -> Outbox:
    return Outbox(pool, audit=AuditLog(clock=clock), clock=clock)


async def enqueued(pool: asyncpg.Pool, target: DeliveryTarget) -> set[str]:
    rows = await pool.fetch(
        "SELECT reference FROM deliveries WHERE target_id = $1 AND kind = 'recording'", target.id
    )
    return {row["reference"] for row in rows}


async def test_a_target_takes_its_tenants_finished_calls_once(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    beta = await make_tenant(pool, "beta")
    target = await add_target(store, acme)
    complete = await add_recording(pool, blobs, tenant_id=acme)
    interrupted = await add_recording(pool, blobs, tenant_id=acme, status=RecordingStatus.INTERRUPTED)
    await add_recording(pool, blobs, tenant_id=acme, status=RecordingStatus.RECORDING)  # still running
    await add_recording(pool, blobs, tenant_id=acme, status=RecordingStatus.NO_MEDIA, with_file=False)
    failed = await add_recording(pool, blobs, tenant_id=acme)
    await set_status(pool, failed.id, "failed")
    await add_recording(pool, blobs, tenant_id=beta)  # another tenant's
    await add_recording(
        pool, blobs, tenant_id=acme, started_at=CREATED - timedelta(hours=2)
    )  # before the target

    clock.now = T0 + timedelta(minutes=5)
    assert await outbox.enqueue_due(clock.now) == 2
    assert await enqueued(pool, target) == {complete.reference, interrupted.reference}
    item = (await outbox.items(recording_id=complete.id))[0]
    assert item.kind is DeliveryKind.RECORDING and item.status is DeliveryStatus.PENDING
    assert item.idempotency_key == idempotency_key(target.id, complete.id, DeliveryKind.RECORDING)
    # The schedule (every 15 min) is not due again yet; forced, nothing is enqueued twice.
    late = await add_recording(pool, blobs, tenant_id=acme, started_at=T0 + timedelta(minutes=6))
    clock.advance(minutes=10)
    assert await outbox.enqueue_due(clock.now) == 0
    assert await outbox.enqueue_due(clock.now, force=True) == 1
    assert await outbox.enqueue_due(clock.now, force=True) == 0
    assert late.reference in await enqueued(pool, target)


async def test_a_daily_window_and_a_disabled_target(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    nightly = await add_target(store, acme, schedule=Schedule.daily(time(1, 0), time(5, 0)))
    paused = await add_target(store, acme, name="paused")
    await store.disable(paused.id, actor=OPERATOR)
    await add_recording(pool, blobs, tenant_id=acme)  # T0: 14:03 UTC, 15:03 in Budapest
    clock.now = T0 + timedelta(hours=1)
    assert await outbox.enqueue_due(clock.now) == 0
    clock.now = T0.replace(hour=23, minute=30)  # 00:30 in Budapest (CET)
    assert await outbox.enqueue_due(clock.now) == 0
    clock.now = T0.replace(hour=23, minute=30) + timedelta(hours=1)  # 01:30 in Budapest
    assert await outbox.enqueue_due(clock.now) == 1
    assert await enqueued(pool, nightly) != set() and await enqueued(pool, paused) == set()


async def test_filters_by_number_direction_and_retention_class(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    by_number = await add_target(
        store, acme, name="by-number", filter=DeliveryFilter.of(numbers=["06 20 555 0123"])
    )
    inbound = await add_target(store, acme, name="inbound", filter=DeliveryFilter.of(direction="inbound"))
    contracts = await add_target(
        store, acme, name="contracts", filter=DeliveryFilter.of(classes=["contract_evidence"])
    )
    everything = await add_target(store, acme, name="everything")
    plain = await add_recording(pool, blobs, tenant_id=acme)
    other = await add_recording(pool, blobs, tenant_id=acme, numbers=(CALLER, OTHER))
    incoming = await add_recording(pool, blobs, tenant_id=acme)
    await set_direction(pool, incoming.id, "inbound")
    outgoing = await add_recording(pool, blobs, tenant_id=acme, numbers=(CALLEE, OTHER))
    await set_direction(pool, outgoing.id, "outbound")
    contract = await add_recording(pool, blobs, tenant_id=acme, class_code="contract_evidence")

    clock.now = T0 + timedelta(minutes=5)
    assert await outbox.enqueue_due(clock.now) == 2 + 1 + 1 + 5
    assert await enqueued(pool, by_number) == {other.reference, outgoing.reference}
    assert await enqueued(pool, inbound) == {incoming.reference}
    assert await enqueued(pool, contracts) == {contract.reference}
    assert await enqueued(pool, everything) == {
        r.reference for r in (plain, other, incoming, outgoing, contract)
    }


async def test_a_backfill_reaches_back_on_request(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    target = await add_target(store, acme)
    old = await add_recording(pool, blobs, tenant_id=acme, started_at=CREATED - timedelta(days=3))
    older = await add_recording(pool, blobs, tenant_id=acme, started_at=CREATED - timedelta(days=30))
    assert await outbox.backfill(target.id, CREATED - timedelta(days=7), actor=OPERATOR) == 1
    clock.now = T0
    assert await outbox.enqueue_due(clock.now) == 1
    assert await enqueued(pool, target) == {old.reference}
    assert older.reference not in await enqueued(pool, target)
    action = await pool.fetchval("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert action == "delivery_target.backfill"


async def test_two_nodes_claiming_at_once_never_share_a_row(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme)
    for _ in range(12):
        await add_recording(pool, blobs, tenant_id=acme, with_key=False)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    claims = await asyncio.gather(*(outbox.claim(f"node-{n}", 4, LEASE) for n in range(4)))
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert all(
        len(claim) <= 4 and {i.lease_owner for i in claim} <= {f"node-{n}"} for n, claim in enumerate(claims)
    )
    assert await outbox.claim("node-x", 4, LEASE) == []  # all leased
    assert all(
        item.status is DeliveryStatus.SENDING and item.attempts == 1 for claim in claims for item in claim
    )


async def test_a_lease_that_runs_out_is_taken_over_and_fences_the_old_owner(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme)
    call = await add_recording(pool, blobs, tenant_id=acme)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    [first] = await outbox.claim("node-a", 10, LEASE)
    clock.advance(minutes=9)
    assert await outbox.claim("node-b", 10, LEASE) == []
    clock.advance(minutes=1)
    [second] = await outbox.claim("node-b", 10, LEASE)
    assert (second.id, second.attempts, second.lease_owner) == (first.id, 2, "node-b")
    # node-a wakes up: its result no longer counts.
    assert not await outbox.succeed(first, remote_path="/x/late.flac", bytes=10, sha256=SHA)
    assert await outbox.retry(first, "late", clock.now) is None
    assert await outbox.succeed(second, remote_path="/srv/a.flac", bytes=1234, sha256=SHA)
    done = await outbox.get(first.id)
    assert (done.status, done.remote_path, done.delivered_at) == (
        DeliveryStatus.DELIVERED,
        "/srv/a.flac",
        clock.now,
    )
    log = await outbox.log(recording_id=call.id)
    assert [(a.attempt, a.node, a.result) for a in log] == [
        (2, "node-b", AttemptResult.DELIVERED),
        (1, "node-a", AttemptResult.ABANDONED),
    ]
    assert "lease ran out" in (log[1].error or "")
    audit = await pool.fetchrow("SELECT action, object_id, details FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert (audit["action"], audit["object_id"]) == ("recording.deliver", str(call.id))
    assert audit["details"]["sha256"] == SHA and audit["details"]["remote_path"] == "/srv/a.flac"


async def test_a_restarted_node_takes_its_own_claims_back_at_once(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme)
    for _ in range(2):
        await add_recording(pool, blobs, tenant_id=acme, with_key=False)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    [mine] = await outbox.claim("node-a", 1, LEASE)
    [theirs] = await outbox.claim("node-b", 1, LEASE)
    clock.advance(minutes=1)  # node-a died and starts again, well within its lease
    assert await outbox.release_own("node-a") == 1
    [again] = await outbox.claim("node-a", 10, LEASE)  # node-b's lease still holds
    assert (again.id, again.attempts) == (mine.id, 2)
    assert theirs.id != mine.id
    log = await outbox.log(recording_id=mine.recording_id)
    assert [(a.attempt, a.result) for a in log][-1] == (1, AttemptResult.ABANDONED)


async def test_retries_back_off_then_the_row_is_dead_until_replayed(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme, max_attempts=3)
    await add_recording(pool, blobs, tenant_id=acme)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    for attempt in (1, 2):
        [item] = await outbox.claim("node-a", 1, LEASE)
        assert item.attempts == attempt
        assert await outbox.retry(item, "connection refused", clock.now + timedelta(seconds=30)) is (
            DeliveryStatus.PENDING
        )
        assert await outbox.claim("node-a", 1, LEASE) == []  # not before its time
        assert await outbox.backlog() == (1, (clock.now - (T0 + timedelta(minutes=5))).total_seconds())
        clock.advance(seconds=30)
    [item] = await outbox.claim("node-a", 1, LEASE)
    assert await outbox.retry(item, "connection refused", clock.now) is DeliveryStatus.DEAD
    [dead] = await outbox.items(status=DeliveryStatus.DEAD)
    assert dead.last_error == "connection refused (gave up after 3 attempts)"
    assert await outbox.backlog() == (0, 0.0)
    assert await outbox.claim("node-a", 1, LEASE) == []

    replayed = await outbox.replay(dead.id, actor=OPERATOR)
    assert replayed.status is DeliveryStatus.PENDING and replayed.failures == 0 and replayed.attempts == 3
    [again] = await outbox.claim("node-a", 1, LEASE)
    assert again.attempts == 4 and again.failures == 1  # the target's three attempts, counted afresh
    assert await outbox.succeed(again, remote_path="/srv/a.flac", bytes=1, sha256=SHA)
    with pytest.raises(LifecycleError, match="is delivered, not dead"):
        await outbox.replay(dead.id, actor=OPERATOR)
    assert [a.attempt for a in await outbox.log(delivery_id=dead.id)] == [4, 3, 2, 1]


async def test_a_failure_no_retry_can_fix_is_dead_at_once(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme)
    await add_recording(pool, blobs, tenant_id=acme)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    [item] = await outbox.claim("node-a", 1, LEASE)
    assert await outbox.dead(item, "the server's host key is not the pinned one") is DeliveryStatus.DEAD
    [entry] = await outbox.log(delivery_id=item.id)
    assert (entry.result, entry.error) == (AttemptResult.DEAD, "the server's host key is not the pinned one")


async def deliver_all(outbox: Outbox, clock: Clock) -> list[int]:
    delivered = []
    for item in await outbox.claim("node-a", 100, LEASE):
        assert await outbox.succeed(item, remote_path=f"/srv/{item.reference}.flac", bytes=1, sha256=SHA)
        delivered.append(item.id)
    return delivered


async def test_erasure_and_restriction_of_a_delivered_recording_become_notices(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    target = await add_target(store, acme)
    erased = await add_recording(pool, blobs, tenant_id=acme)
    held = await add_recording(pool, blobs, tenant_id=acme)
    expiring = await add_recording(pool, blobs, tenant_id=acme)
    never_sent = await add_recording(pool, blobs, tenant_id=acme, started_at=CREATED - timedelta(days=1))
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    await deliver_all(outbox, clock)

    audit = AuditLog(clock=clock)
    erasure = ErasureService(pool, blobs, audit=audit, clock=clock)
    holds = HoldService(pool, audit=audit, clock=clock)
    await erasure.erase(acme, erased.id, OPERATOR, "erasure request ER-2026-0042")
    await erasure.erase(acme, never_sent.id, OPERATOR, "erasure request ER-2026-0043")
    placed = await holds.place_on_recording(acme, held.id, reason="NAIH inquiry", actor=OPERATOR)
    assert await outbox.enqueue_notices(clock.now) == 2
    notices = {(i.reference, i.kind, i.reason, i.remote_path) for i in await outbox.items() if i.kind.notice}
    assert notices == {
        (erased.reference, DeliveryKind.ERASED, "erasure_request", f"/srv/{erased.reference}.flac"),
        (held.reference, DeliveryKind.RESTRICTED, "legal_hold", f"/srv/{held.reference}.flac"),
    }
    assert await outbox.enqueue_notices(clock.now) == 0  # each event once

    # The end of our own retention period is no news to a recipient that keeps its own copy.
    clock.now = T0 + timedelta(days=61)
    await Sweeper(pool, blobs, audit=audit, clock=clock, node="node-a").sweep(clock.now)
    assert await pool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", expiring.id) == 0
    assert await outbox.enqueue_notices(clock.now) == 0
    await deliver_all(outbox, clock)

    # Release, then a second restriction: the notice goes out again.
    await holds.request_release(acme, placed.hold.id, OPERATOR)
    await holds.approve_release(acme, placed.hold.id, BELA)
    await holds.place_on_recording(acme, held.id, reason="court order", actor=OPERATOR)
    clock.advance(minutes=1)
    assert await outbox.enqueue_notices(clock.now) == 2
    pending = {(i.kind, i.status) for i in await outbox.items(recording_id=held.id, target_id=target.id)}
    assert pending == {
        (DeliveryKind.RECORDING, DeliveryStatus.DELIVERED),
        (DeliveryKind.RESTRICTED, DeliveryStatus.PENDING),
        (DeliveryKind.UNRESTRICTED, DeliveryStatus.PENDING),
    }


async def test_a_notice_waits_for_its_recordings_upload_in_flight(
    pool: asyncpg.Pool, blobs: FileBlobStore, store: TargetStore, outbox: Outbox, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme)
    call = await add_recording(pool, blobs, tenant_id=acme)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    [upload] = await outbox.claim("node-a", 10, LEASE)
    await ErasureService(pool, blobs, audit=AuditLog(clock=clock), clock=clock).erase(
        acme, call.id, OPERATOR, "erasure request"
    )
    assert await outbox.enqueue_notices(clock.now) == 1
    assert await outbox.claim("node-b", 10, LEASE) == []  # the upload is still in flight
    # It completed just before the erasure: the recipient has a copy, and now hears that ours is gone.
    assert await outbox.succeed(upload, remote_path=f"/srv/{call.reference}.flac", bytes=1, sha256=SHA)
    [notice] = await outbox.claim("node-b", 10, LEASE)
    assert (notice.kind, notice.recording_id) == (DeliveryKind.ERASED, call.id)
    copy = await outbox.copy_of(notice)
    assert copy is not None and copy.remote_path == f"/srv/{call.reference}.flac"
