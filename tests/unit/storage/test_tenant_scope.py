"""Tenant isolation across the lifecycle services: a tenant-scoped call reaches that tenant's rows only, never
another tenant's nor the calls no tenant claimed; ``None`` reaches only the unclaimed calls; ``ALL_TENANTS``
(the operator) reaches every one.

The same caller (+36 1 234 5678) talks to two tenants' agents and to an unattributed number, so every query by
number or id has all three recordings to choose from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest

from storage import FileBlobStore
from storage.access_requests import AccessRequests
from storage.access_rules import SearchCriteria
from storage.audio_opener import plain_audio_opener, plain_file_opener
from storage.audit import Actor, AuditEntry, AuditLog
from storage.audit_verify import AuditQuery
from storage.consent import ConsentLedger, ProofOutcome
from storage.erasure import ErasureOutcome, ErasureService
from storage.errors import NotFoundError, RecordingNotFoundError
from storage.holds import HoldFilter, HoldService
from storage.integrity import Integrity
from storage.lifecycle_rows import find_recording, recording_facts
from storage.retention_service import RetentionService
from storage.scope import ALL_TENANTS, TenantScope, scope_args, scope_sql, tenant_within
from storage.subject_data import SubjectData

from .retention_samples import CALLER, T0, Clock, Stored, add_recording, key_state, make_tenant, row

ANNA = Actor(name="anna@example.hu", origin="192.0.2.7")
SCOPES = ("acme", "globex", "unclaimed", "all")


@dataclass(frozen=True, slots=True)
class World:
    acme: UUID
    globex: UUID
    calls: dict[str, Stored]  # by owner: "acme", "globex", "unclaimed"

    def scope(self, name: str) -> TenantScope:
        return {"acme": self.acme, "globex": self.globex, "unclaimed": None, "all": ALL_TENANTS}[name]

    def reached(self, name: str) -> set[UUID]:
        """The recordings ``scope(name)`` may touch."""
        owners = ("acme", "globex", "unclaimed") if name == "all" else (name,)
        return {self.calls[owner].id for owner in owners}

    def others(self, name: str) -> set[UUID]:
        return {call.id for call in self.calls.values()} - self.reached(name)


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=5))


@pytest.fixture
async def world(pool: asyncpg.Pool, blobs: FileBlobStore) -> World:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")
    calls = {}
    for minute, (owner, tenant_id, agent) in enumerate(
        (("acme", acme, "+3618889000"), ("globex", globex, "+3613337000"), ("unclaimed", None, "+3614441000"))
    ):
        calls[owner] = await add_recording(
            pool,
            blobs,
            tenant_id=tenant_id,
            started_at=T0 + timedelta(minutes=minute),
            numbers=(CALLER, agent),
            class_code="consent",
            basis="consent",
            consent_state="given",
        )
    return World(acme=acme, globex=globex, calls=calls)


async def _present(pool: asyncpg.Pool, world: World) -> set[UUID]:
    return {call.id for call in world.calls.values() if await row(pool, call.id) is not None}


def _erasure(pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock) -> ErasureService:
    return ErasureService(pool, blobs, audit=AuditLog(clock=clock), clock=clock)


# -- the rule itself -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCOPES)
async def test_the_sql_test_of_a_scope_is_the_python_one(pool: asyncpg.Pool, world: World, name: str) -> None:
    scope = world.scope(name)
    rows = await pool.fetch(
        f"SELECT id, tenant_id FROM recordings WHERE {scope_sql('tenant_id', 1)}",
        *scope_args(scope),
    )
    assert {r["id"] for r in rows} == world.reached(name)
    assert all(tenant_within(scope, r["tenant_id"]) for r in rows)
    others = await pool.fetch(
        "SELECT tenant_id FROM recordings WHERE id = ANY($1::uuid[])", world.others(name)
    )
    assert not any(tenant_within(scope, r["tenant_id"]) for r in others)


def test_the_operator_scope_is_a_distinct_value() -> None:
    assert scope_args(ALL_TENANTS) == (True, None)
    assert scope_args(None) == (False, None)
    assert scope_args(UUID(int=7)) == (False, UUID(int=7))
    assert ALL_TENANTS is not None and repr(ALL_TENANTS) == "ALL_TENANTS"
    assert tenant_within(None, None) and not tenant_within(None, UUID(int=7))
    assert not tenant_within(UUID(int=7), None) and tenant_within(ALL_TENANTS, None)


# -- lookups ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCOPES)
async def test_a_recording_is_found_only_within_its_scope(
    pool: asyncpg.Pool, world: World, name: str
) -> None:
    scope = world.scope(name)
    for call in world.calls.values():
        if call.id in world.reached(name):
            assert (await recording_facts(pool, scope, call.id)).id == call.id
            assert (await find_recording(pool, scope, call.reference.lower())).id == call.id
        else:
            with pytest.raises(NotFoundError):
                await recording_facts(pool, scope, call.id)
            with pytest.raises(NotFoundError):
                await find_recording(pool, scope, call.reference)


# -- erasure and withdrawal ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SCOPES)
async def test_erasing_a_number_erases_within_the_scope_only(
    pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock, world: World, name: str
) -> None:
    report = await _erasure(pool, blobs, clock).erase_number(world.scope(name), "06 1 234 5678", ANNA)
    assert {r.recording_id for r in report.results if r.outcome is ErasureOutcome.ERASED} == world.reached(
        name
    )
    assert await _present(pool, world) == world.others(name)
    for call in world.calls.values():
        if call.id in world.others(name):
            assert call.path is not None and call.path.exists() and (await key_state(pool, call.id))[0]


@pytest.mark.parametrize("name", ["acme", "unclaimed"])
async def test_erasing_another_scopes_recording_is_not_found(
    pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock, world: World, name: str
) -> None:
    erasure = _erasure(pool, blobs, clock)
    for recording_id in world.others(name):
        with pytest.raises(NotFoundError):
            await erasure.erase(world.scope(name), recording_id, ANNA, "erasure request")
    assert await _present(pool, world) == world.reached(name) | world.others(name)


@pytest.mark.parametrize("name", ["acme", "unclaimed"])
async def test_a_withdrawal_erases_the_scopes_consent_recordings_only(
    pool: asyncpg.Pool, blobs: FileBlobStore, clock: Clock, world: World, name: str
) -> None:
    withdrawal = await _erasure(pool, blobs, clock).withdraw_consent(
        world.scope(name), "+36 1 234 5678", ANNA
    )
    assert {d.recording_id for d in withdrawal.erased} == world.reached(name)
    assert await _present(pool, world) == world.others(name)
    stored = await pool.fetchval("SELECT tenant_id FROM consent_withdrawals WHERE id = $1", withdrawal.id)
    assert stored == world.scope(name)
    states = await pool.fetch(
        "SELECT consent_state FROM recordings WHERE id = ANY($1::uuid[])", world.others(name)
    )
    assert [r["consent_state"] for r in states] == ["given", "given"]


# -- holds -----------------------------------------------------------------------------------------------------
async def test_a_tenants_hold_covers_and_shows_its_own_recordings_only(
    pool: asyncpg.Pool, clock: Clock, world: World
) -> None:
    holds = HoldService(pool, audit=AuditLog(clock=clock), clock=clock)
    acme_hold = await holds.place_on_number(
        world.acme, "+36 1 234 5678", reason="court order 5.P.21/2026", actor=ANNA
    )
    assert set(acme_hold.covered) == world.reached("acme")
    for recording_id in world.others("acme"):
        with pytest.raises(NotFoundError):
            await holds.place_on_recording(world.acme, recording_id, reason="dispute", actor=ANNA)
    unclaimed_hold = await holds.place_on_recording(
        None, world.calls["unclaimed"].id, reason="complaint 2026/118", actor=ANNA
    )
    assert unclaimed_hold.hold.tenant_id is None and unclaimed_hold.covered == (world.calls["unclaimed"].id,)
    with pytest.raises(NotFoundError):
        await holds.place_on_recording(None, world.calls["acme"].id, reason="dispute", actor=ANNA)
    with pytest.raises(ValueError, match="ALL_TENANTS"):
        await holds.place_on_number(None, CALLER, reason="dispute", actor=ANNA)  # type: ignore[arg-type]
    operator = await holds.place_on_number(
        ALL_TENANTS, CALLER, reason="police request 01000/1/2026", actor=ANNA
    )
    assert set(operator.covered) == world.reached("all") and operator.hold.tenant_id is None
    assert [h.id for h in await holds.list(world.acme)] == [acme_hold.hold.id]
    assert await holds.list(world.globex, which=HoldFilter.ALL) == []
    assert {h.id for h in await holds.list(None)} == {unclaimed_hold.hold.id, operator.hold.id}
    assert len(await holds.list(ALL_TENANTS)) == 3
    for hold_id in (unclaimed_hold.hold.id, operator.hold.id):
        with pytest.raises(NotFoundError):
            await holds.get(world.acme, hold_id)
        with pytest.raises(NotFoundError):
            await holds.request_release(world.acme, hold_id, ANNA)
    with pytest.raises(NotFoundError):
        await holds.get(None, acme_hold.hold.id)
    assert (await holds.get(ALL_TENANTS, acme_hold.hold.id)).id == acme_hold.hold.id


# -- retention -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["acme", "unclaimed"])
async def test_retention_is_changed_within_the_scope_only(
    pool: asyncpg.Pool, clock: Clock, world: World, name: str
) -> None:
    service = RetentionService(pool, audit=AuditLog(clock=clock), clock=clock)
    (mine,) = world.reached(name)
    change = await service.change_retention(world.scope(name), mine, days=400, actor=ANNA)
    assert change.new_expires_at == world.calls[name].recording.started_at + timedelta(days=400)
    for recording_id in world.others(name):
        before = await row(pool, recording_id)
        with pytest.raises(NotFoundError):
            await service.change_retention(world.scope(name), recording_id, days=400, actor=ANNA)
        assert await row(pool, recording_id) == before


# -- subject access, consent proofs, integrity, audit ----------------------------------------------------------
@pytest.mark.parametrize("name", ["acme", "globex", "unclaimed"])
async def test_a_subject_search_finds_the_controllers_recordings_only(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path, world: World, name: str
) -> None:
    tenant_id = world.scope(name)
    assert tenant_id is not ALL_TENANTS
    requests = AccessRequests(
        pool,
        audit=AuditLog(),
        open_audio=plain_audio_opener(blobs),
        open_file=plain_file_opener(blobs),
        bundle_dir=tmp_path / "bundles",
    )
    found = await requests.search(tenant_id, number="+36 1 234 5678", actor=ANNA)
    assert {s.recording.id for s in found} == world.reached(name)
    everyone = [call.id for call in world.calls.values()]
    assert {s.recording.id for s in await SubjectData(pool).by_ids(tenant_id, everyone)} == world.reached(
        name
    )
    by_reference = SearchCriteria(reference=world.calls["globex"].reference)
    assert bool(await SubjectData(pool).search(tenant_id, by_reference)) == (name == "globex")


@pytest.mark.parametrize("name", ["acme", "unclaimed"])
async def test_consent_proofs_are_stored_and_read_within_the_scope_only(
    pool: asyncpg.Pool, world: World, name: str
) -> None:
    ledger = ConsentLedger(pool, audit=AuditLog())
    tenant_id = world.scope(name)
    assert tenant_id is not ALL_TENANTS
    for recording_id in world.others(name):
        async with pool.acquire() as conn, conn.transaction():
            with pytest.raises(RecordingNotFoundError):
                await ledger.record(
                    conn,
                    recording_id=recording_id,
                    tenant_id=tenant_id,
                    number=CALLER,
                    prompt_version="hu-2026-11",
                    asked_at=T0,
                    answered_at=T0 + timedelta(seconds=3),
                    digit="1",
                    outcome=ProofOutcome.GIVEN,
                )
        with pytest.raises(RecordingNotFoundError):
            await ledger.proofs(recording_id, tenant_id=tenant_id)
    (mine,) = world.reached(name)
    assert await ledger.proofs(mine, tenant_id=tenant_id) == []
    assert await pool.fetchval("SELECT count(*) FROM consent_proofs") == 0


@pytest.mark.parametrize("name", SCOPES)
async def test_integrity_checks_the_scopes_recordings_only(
    pool: asyncpg.Pool, blobs: FileBlobStore, world: World, name: str
) -> None:
    integrity = Integrity(
        pool, open_audio=plain_audio_opener(blobs), open_file=plain_file_opener(blobs), audit=AuditLog()
    )
    results = [result async for result in integrity.verify_all(world.scope(name), actor=ANNA)]
    assert {r.recording_id for r in results} == world.reached(name) and all(r.ok for r in results)
    logged = await pool.fetchval("SELECT tenant_id FROM audit_log WHERE action = 'integrity.verify'")
    assert logged == (None if name == "all" else world.scope(name))


async def test_the_audit_trail_is_listed_within_the_scope(pool: asyncpg.Pool, world: World) -> None:
    log = AuditLog()
    for tenant_id in (world.acme, world.globex, None):
        await log.record(pool, AuditEntry(actor=ANNA, action="recording.search", tenant_id=tenant_id))
    query = AuditQuery(pool)
    assert {e.tenant_id for e in await query.list(tenant_id=world.acme)} == {world.acme}
    assert {e.tenant_id for e in await query.list(tenant_id=None)} == {None}
    assert {e.tenant_id for e in await query.list()} == {world.acme, world.globex, None}
