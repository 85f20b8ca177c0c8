"""Erasure, discard at hang-up and consent withdrawal: what goes (key, files, rows), what stays, and why."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from storage import FileBlobStore, RecordingStatus
from storage.audit import Actor, AuditLog
from storage.disposal import DisposalReason, dispose
from storage.erasure import ErasureOutcome, ErasureService
from storage.errors import CatalogueError, LifecycleError, NotFoundError, StatutoryFloorError, UnderHoldError
from storage.holds import HoldService
from storage.lifecycle_rows import Lock, recording_facts
from storage.retention import ErasureRefusal
from storage.scope import ALL_TENANTS
from storage.sweeper import Sweeper

from .retention_samples import (
    CALLEE,
    CALLER,
    OTHER,
    T0,
    Clock,
    Stored,
    add_recording,
    add_rendition,
    audit_actions,
    key_state,
    make_tenant,
    outbox,
    row,
)

ANNA = Actor(name="anna@example.hu", origin="192.0.2.7")
BELA = Actor(name="bela@example.hu", origin="192.0.2.8")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=5))


@pytest.fixture
def erasure(pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock) -> ErasureService:
    return ErasureService(pool, blobs, audit=AuditLog(clock=clock), clock=clock)


async def _proof(pool: asyncpg.Pool, recording_id: object, tenant_id: object) -> None:
    await pool.execute(
        """
        INSERT INTO consent_proofs (recording_id, tenant_id, number, prompt_version, asked_at, answered_at, digit,
                                    outcome)
        VALUES ($1, $2, $3, 'v1', $4, $5, '1', 'given')
        """,
        recording_id,
        tenant_id,
        CALLER,
        T0 + timedelta(seconds=2),
        T0 + timedelta(seconds=5.2),
    )


async def test_erasure_shreds_the_key_removes_every_file_and_row_and_leaves_a_log_without_personal_data(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    call = await add_recording(pool, blobs, tenant_id=acme, basis="consent", class_code="consent")
    assert call.path is not None
    wav = await add_rendition(pool, call)
    await _proof(pool, call.id, acme)
    kept = await add_recording(pool, blobs, tenant_id=acme)
    size = call.path.stat().st_size + wav.stat().st_size

    disposal = await erasure.erase(acme, call.id, ANNA, "request by email, ticket 2026-4711")

    assert (disposal.reason, disposal.files, disposal.bytes) == (DisposalReason.ERASURE_REQUEST, 2, size)
    assert await row(pool, call.id) is None
    assert not call.path.exists() and not wav.exists()
    assert await key_state(pool, call.id) == (False, clock.now)
    for table in ("renditions", "consent_proofs"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE recording_id = $1", call.id) == 0
    logged = dict(await pool.fetchrow("SELECT * FROM disposals"))
    del logged["id"]
    assert logged == {
        "recording_id": call.id,
        "tenant_id": acme,
        "retention_class": "consent",
        "reason": "erasure_request",
        "disposed_at": clock.now,
        "disposed_by": "anna@example.hu",
        "files": 2,
        "bytes": size,
    }
    assert await outbox(pool) == [(call.id, "erased")]
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.erase'")
    assert (
        entry["object_id"] == str(call.id)
        and entry["details"]["note"] == "request by email, ticket 2026-4711"
    )
    assert CALLER not in str(dict(entry)) and CALLER not in str(logged)
    # nothing else was touched
    assert kept.path is not None and kept.path.exists() and await row(pool, kept.id) is not None
    assert (await key_state(pool, kept.id))[0]


async def test_a_replaced_master_still_on_disk_goes_too(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService
) -> None:
    call = await add_recording(pool, blobs, tenant_id=None)
    assert call.path is not None
    wav = await add_rendition(pool, call, replaces_master=True)
    await pool.execute(
        "UPDATE recordings SET file_path = $2, format = 'wav' WHERE id = $1", call.id, str(wav)
    )
    disposal = await erasure.erase(ALL_TENANTS, call.id, ANNA, "operator clean-up")
    assert disposal.files == 2 and not wav.exists() and not call.path.exists()


async def test_a_statutory_recording_is_refused_with_the_statute_and_the_remedies_until_its_floor(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService, clock: Clock
) -> None:
    gas = await make_tenant(pool, "budapest-gas")
    call = await add_recording(
        pool, blobs, tenant_id=gas, class_code="utility_customer_service", basis="legal_obligation"
    )
    with pytest.raises(StatutoryFloorError) as refused:
        await erasure.erase(gas, call.id, ANNA, "the caller asked by phone")
    for needed in ("Art. 17(3)(b)", "Fgytv. 17/B §", "NAIH", "court", call.reference):
        assert needed in str(refused.value)
    assert call.path is not None and call.path.exists() and (await key_state(pool, call.id))[0]
    refusal = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.erase_refused'")
    assert refusal["details"] == {"rule": "statutory", "note": "the caller asked by phone"}
    clock.now = T0 + timedelta(days=1826)
    await erasure.erase(gas, call.id, ANNA, "the caller asked again after five years")
    assert await row(pool, call.id) is None


async def test_a_call_in_progress_and_another_tenants_call_are_not_erased(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService
) -> None:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")
    live = await add_recording(pool, blobs, tenant_id=acme, status=RecordingStatus.RECORDING)
    with pytest.raises(LifecycleError, match="still being recorded"):
        await erasure.erase(acme, live.id, ANNA, "request")
    theirs = await add_recording(pool, blobs, tenant_id=globex)
    with pytest.raises(NotFoundError):
        await erasure.erase(acme, theirs.id, ANNA, "request")
    with pytest.raises(NotFoundError):
        await erasure.erase(acme, uuid4(), ANNA, "request")
    assert theirs.path is not None and theirs.path.exists()


async def test_erasing_a_number_reports_each_recording(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    plain = await add_recording(pool, blobs, tenant_id=acme, numbers=(CALLER, CALLEE))
    statutory = await add_recording(
        pool,
        blobs,
        tenant_id=acme,
        numbers=(OTHER, CALLEE),
        class_code="telecom_fault_reports",
        basis="legal_obligation",
        started_at=T0 + timedelta(hours=1),
    )
    held = await add_recording(
        pool, blobs, tenant_id=acme, numbers=(CALLEE,), started_at=T0 + timedelta(hours=2)
    )
    unrelated = await add_recording(pool, blobs, tenant_id=acme, numbers=(CALLER, OTHER))
    await HoldService(pool, audit=AuditLog(clock=clock), clock=clock).place_on_recording(
        acme, held.id, reason="insurance claim 88/2026", actor=BELA
    )

    report = await erasure.erase_number(acme, "06 30 123 4567", ANNA)  # the callee, as people write it

    assert report.number == CALLEE
    outcomes = {r.recording_id: (r.outcome, r.rule) for r in report.results}
    assert outcomes == {
        plain.id: (ErasureOutcome.ERASED, None),
        statutory.id: (ErasureOutcome.REFUSED, ErasureRefusal.STATUTORY),
        held.id: (ErasureOutcome.REFUSED, ErasureRefusal.HELD),
    }
    held_message = next(r.message for r in report.results if r.recording_id == held.id)
    assert "insurance claim 88/2026" in held_message and "bela@example.hu" in held_message
    assert report.to_json()["erased"] == 1 and report.to_json()["refused"] == 2
    assert await row(pool, unrelated.id) is not None
    assert [a for a in await audit_actions(pool) if a.startswith("recording.")] == [
        "recording.erase",
        "recording.erase_refused",
        "recording.erase_refused",
    ]
    with pytest.raises(ValueError, match="not a phone number"):
        await erasure.erase_number(acme, "unknown caller", ANNA)


async def test_a_file_outside_the_recordings_directory_is_never_touched(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService, tmp_path: Path
) -> None:
    call = await add_recording(pool, blobs, tenant_id=None)
    assert call.path is not None
    outside = tmp_path / "elsewhere.flac"
    shutil.copy(call.path, outside)
    await pool.execute("UPDATE recordings SET file_path = $2 WHERE id = $1", call.id, str(outside))
    with pytest.raises(CatalogueError, match="outside the recordings directory"):
        await erasure.erase(None, call.id, ANNA, "request")
    assert outside.exists() and await row(pool, call.id) is not None and (await key_state(pool, call.id))[0]
    relative = await add_recording(pool, blobs, tenant_id=None)
    await pool.execute("UPDATE recordings SET file_path = '../../etc/hosts' WHERE id = $1", relative.id)
    with pytest.raises(CatalogueError, match="outside"):
        await erasure.erase(None, relative.id, ANNA, "request")


async def test_a_failure_after_the_delete_leaves_the_row_and_a_retry_finishes(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService
) -> None:
    call = await add_recording(pool, blobs, tenant_id=None)
    assert call.path is not None
    # a rendition path that cannot be unlinked: a directory with something in it
    stuck = call.path.with_suffix(".wav")
    stuck.mkdir()
    (stuck / "x").write_bytes(b"\0")
    await pool.execute(
        "INSERT INTO renditions (recording_id, format, status, file_path, size_bytes, sha256) "
        "VALUES ($1, 'wav', 'done', $2, 1, $3)",
        call.id,
        str(stuck),
        "0" * 64,
    )
    with pytest.raises(CatalogueError, match="cannot remove the files"):
        await erasure.erase(None, call.id, ANNA, "request")
    # the master went, the row (and its key) did not: never a file without a row
    assert not call.path.exists()
    assert await row(pool, call.id) is not None and (await key_state(pool, call.id))[0]
    assert await pool.fetchval("SELECT count(*) FROM disposals") == 0
    shutil.rmtree(stuck)
    disposal = await erasure.erase(None, call.id, ANNA, "request, second attempt")
    assert disposal.files == 0 and await row(pool, call.id) is None


async def test_the_hold_trigger_stops_a_deletion_before_any_file_is_removed(
    pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock
) -> None:
    call = await add_recording(pool, blobs, tenant_id=None)
    assert call.path is not None
    async with pool.acquire() as conn, conn.transaction():
        facts = await recording_facts(conn, None, call.id, lock=Lock.UPDATE)
        # a hold committed after the caller checked: only the trigger is left to notice
        await pool.execute(
            "INSERT INTO holds (id, number, reason, placed_by) VALUES ($1, $2, 'court order 5.P.21.345/2026', 'x')",
            uuid4(),
            CALLER,
        )
        with pytest.raises(UnderHoldError):
            async with conn.transaction():
                await dispose(
                    conn,
                    facts,
                    reason=DisposalReason.EXPIRED,
                    disposed_by="t",
                    now=clock.now,
                    blobs=blobs,
                )
    assert call.path.exists() and await row(pool, call.id) is not None and (await key_state(pool, call.id))[0]


async def test_discard_at_hang_up_for_calls_not_kept_or_without_consent(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService
) -> None:
    not_kept = await add_recording(pool, blobs, tenant_id=None, class_code="none")
    refused = await add_recording(
        pool, blobs, tenant_id=None, class_code="consent", basis="consent", consent_state="refused"
    )
    stopped = await add_recording(
        pool, blobs, tenant_id=None, class_code="consent", basis="consent", consent_state="withdrawn"
    )
    given = await add_recording(
        pool, blobs, tenant_id=None, class_code="consent", basis="consent", consent_state="given"
    )
    kept = await add_recording(pool, blobs, tenant_id=None)
    assert (await erasure.discard(not_kept.id, DisposalReason.NOT_KEPT)).reason is DisposalReason.NOT_KEPT
    await erasure.discard(refused.id, DisposalReason.CONSENT_REFUSED)
    await erasure.discard(stopped.id, DisposalReason.CONSENT_WITHDRAWN)  # the stop key during the call
    reasons = {r["recording_id"]: r["reason"] for r in await pool.fetch("SELECT * FROM disposals")}
    assert reasons == {
        not_kept.id: "not_kept",
        refused.id: "consent_refused",
        stopped.id: "consent_withdrawn",
    }
    with pytest.raises(LifecycleError, match="was given and stands"):
        await erasure.discard(given.id, DisposalReason.CONSENT_REFUSED)
    assert {r["disposed_by"] for r in await pool.fetch("SELECT * FROM disposals")} == {"system:recorder"}
    with pytest.raises(LifecycleError, match="keeps it"):
        await erasure.discard(kept.id, DisposalReason.NOT_KEPT)
    with pytest.raises(LifecycleError, match="not recorded on consent"):
        await erasure.discard(kept.id, DisposalReason.CONSENT_REFUSED)
    with pytest.raises(ValueError, match="discard"):
        await erasure.discard(kept.id, DisposalReason.EXPIRED)
    assert kept.path is not None and kept.path.exists()


async def test_a_hold_on_the_number_keeps_even_a_call_that_was_not_to_be_kept(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService, clock: Clock
) -> None:
    await HoldService(pool, audit=AuditLog(clock=clock), clock=clock).place_on_number(
        ALL_TENANTS, CALLER, reason="police request 01000/1234/2026", actor=BELA
    )
    call = await add_recording(pool, blobs, tenant_id=None, class_code="none")
    with pytest.raises(UnderHoldError, match="police request"):
        await erasure.discard(call.id, DisposalReason.NOT_KEPT)
    assert call.path is not None and call.path.exists()


async def consent_call(pool: asyncpg.Pool, blobs: FileBlobStore, **fields: Any) -> Stored:
    """A call recorded on consent the party gave at the prompt."""
    return await add_recording(
        pool, blobs, class_code="consent", basis="consent", consent_state="given", **fields
    )


async def test_withdrawal_erases_only_that_numbers_consent_recordings(
    pool: asyncpg.Pool, blobs: FileBlobStore, erasure: ErasureService, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")

    mine = await consent_call(pool, blobs, tenant_id=acme)
    mine_held = await consent_call(pool, blobs, tenant_id=acme, started_at=T0 + timedelta(days=1))
    mine_live = await consent_call(
        pool, blobs, tenant_id=acme, started_at=T0 + timedelta(days=5), status=RecordingStatus.RECORDING
    )
    mine_other_basis = await add_recording(pool, blobs, tenant_id=acme)  # legitimate interest
    someone_else = await consent_call(pool, blobs, tenant_id=acme, numbers=(OTHER, CALLEE))
    other_tenant = await consent_call(pool, blobs, tenant_id=globex)
    holds = HoldService(pool, audit=AuditLog(clock=clock), clock=clock)
    hold = await holds.place_on_recording(acme, mine_held.id, reason="complaint 2026/77", actor=BELA)

    withdrawal = await erasure.withdraw_consent(acme, "+36 1 234 5678", ANNA)

    assert [d.recording_id for d in withdrawal.erased] == [mine.id]
    assert withdrawal.held == (mine_held.id,) and withdrawal.in_progress == (mine_live.id,)
    assert await row(pool, mine.id) is None
    for survivor in (mine_held, mine_live, mine_other_basis, someone_else, other_tenant):
        assert await row(pool, survivor.id) is not None
    states = {
        r["id"]: r["consent_state"]
        for r in await pool.fetch("SELECT id, consent_state FROM recordings WHERE tenant_id = $1", acme)
    }
    assert states[mine_held.id] == states[mine_live.id] == "withdrawn"
    assert states[someone_else.id] == "given"
    logged = await pool.fetchrow("SELECT * FROM consent_withdrawals")
    assert (logged["tenant_id"], logged["number"], logged["recorded_by"]) == (acme, CALLER, ANNA.name)
    assert (logged["recordings_erased"], logged["recordings_held"]) == (1, 1)
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'consent.withdraw'")
    assert entry["details"] == {"erased": 1, "held": 1, "in_progress": 1}
    assert await pool.fetchval("SELECT reason FROM disposals") == "consent_withdrawn"

    # once the hold is released (two people) the sweeper erases it, as withdrawn; so the ended call
    await holds.request_release(acme, hold.hold.id, BELA)
    await holds.approve_release(acme, hold.hold.id, ANNA)
    await pool.execute("UPDATE recordings SET status = 'complete' WHERE id = $1", mine_live.id)
    sweeper = Sweeper(pool, blobs, audit=AuditLog(clock=clock), clock=clock, node="node-a")
    report = await sweeper.sweep(clock.now)
    assert {item.recording_id for item in report.items} == {mine_held.id, mine_live.id}
    reasons = [r["reason"] for r in await pool.fetch("SELECT reason FROM disposals")]
    assert reasons == ["consent_withdrawn"] * 3
    assert await row(pool, mine_other_basis.id) is not None
