"""Delete-after-delivery against a real catalogue: our copy goes once every target that takes it has it, a legal
hold or a statutory class keeps it (recorded and audited, not an error), and the erasure sends no notice back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from storage import FileBlobStore
from storage.audit import AuditLog
from storage.delivery_copies import CopyReport, DeliveredCopies
from storage.delivery_items import DeliveryStatus
from storage.delivery_outbox import Outbox
from storage.delivery_targets import TargetStore
from storage.erasure import ErasureService
from storage.holds import HoldService
from storage.keyfile import KeyFileProvider
from tests.unit.delivery.samples import CREATED, OPERATOR, add_target

from .retention_samples import T0, Clock, add_recording, make_tenant

LEASE = timedelta(minutes=10)
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture
def clock() -> Clock:
    return Clock(CREATED)


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


async def deliver(outbox: Outbox, target_id: object | None = None) -> None:
    for item in await outbox.claim("node-a", 100, LEASE):
        if target_id is None or item.target_id == target_id:
            assert await outbox.succeed(item, remote_path=f"/srv/{item.reference}.flac", bytes=1, sha256=SHA)
        else:
            assert await outbox.retry(item, "connection refused", item.next_attempt_at + timedelta(hours=1))


async def test_our_copy_goes_after_delivery_unless_a_hold_or_a_statute_keeps_it(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path, clock: Clock
) -> None:
    audit = AuditLog(clock=clock)
    store = TargetStore(pool, KeyFileProvider(tmp_path / "keys.json"), audit=audit, clock=clock)
    outbox = Outbox(pool, audit=audit, clock=clock)
    erasure = ErasureService(pool, blobs, audit=audit, clock=clock)
    copies = DeliveredCopies(pool, erasure, node="node-a")
    acme = await make_tenant(pool, "acme")
    await add_target(store, acme, delete_after_delivery=True)
    plain = await add_recording(pool, blobs, tenant_id=acme)
    held = await add_recording(pool, blobs, tenant_id=acme)
    statutory = await add_recording(
        pool, blobs, tenant_id=acme, class_code="utility_customer_service", basis="legal_obligation"
    )
    clock.now = T0 + timedelta(minutes=5)
    await HoldService(pool, audit=audit, clock=clock).place_on_recording(
        acme, held.id, reason="complaint 2026/114", actor=OPERATOR
    )
    await outbox.enqueue_due(clock.now)
    await deliver(outbox)
    await outbox.enqueue_notices(clock.now)  # the hold's restricted event: a notice

    assert await copies.erase_delivered() == CopyReport(erased=1, kept=2, waiting=0)
    assert await copies.erase_delivered() == CopyReport()  # settled for good
    remaining = {r["id"] for r in await pool.fetch("SELECT id FROM recordings")}
    assert remaining == {held.id, statutory.id}
    assert plain.path is not None and not plain.path.exists()
    states = {
        item.recording_id: (item.copy_state, item.copy_note)
        for item in await outbox.items(status=DeliveryStatus.DELIVERED)
        if not item.kind.notice
    }
    assert states[plain.id] == ("erased", "delivered to archive; erased here after the confirmed delivery")
    assert states[held.id][0] == "kept" and "legal hold" in (states[held.id][1] or "")
    assert states[statutory.id][0] == "kept" and "Art. 17(3)(b)" in (states[statutory.id][1] or "")
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY seq")]
    assert actions.count("recording.erase") == 1 and actions.count("recording.erase_refused") == 2
    # Erasing our copy is not news for the recipient: no erased notice.
    assert await outbox.enqueue_notices(clock.now) == 0
    assert {i.kind.value for i in await outbox.items() if i.kind.notice} == {"restricted"}


async def test_a_second_target_still_waiting_keeps_our_copy(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path, clock: Clock
) -> None:
    audit = AuditLog(clock=clock)
    store = TargetStore(pool, KeyFileProvider(tmp_path / "keys.json"), audit=audit, clock=clock)
    outbox = Outbox(pool, audit=audit, clock=clock)
    copies = DeliveredCopies(pool, ErasureService(pool, blobs, audit=audit, clock=clock), node="node-a")
    acme = await make_tenant(pool, "acme")
    archive = await add_target(store, acme, delete_after_delivery=True)
    crm = await add_target(store, acme, name="crm")
    call = await add_recording(pool, blobs, tenant_id=acme)
    clock.now = T0 + timedelta(minutes=5)
    await outbox.enqueue_due(clock.now)
    await deliver(outbox, target_id=archive.id)  # the CRM is down
    assert await copies.erase_delivered() == CopyReport(waiting=1)
    assert await pool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", call.id) == 1
    clock.advance(hours=2)
    await deliver(outbox, target_id=crm.id)
    assert await copies.erase_delivered() == CopyReport(erased=1)
    assert await pool.fetchval("SELECT count(*) FROM recordings WHERE id = $1", call.id) == 0
