"""Retention classes, a tenant's options and changing one recording's period, on the real catalogue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from storage import FileBlobStore
from storage.audit import Actor, AuditLog
from storage.errors import LifecycleError, NotFoundError, StatutoryFloorError, UnderHoldError
from storage.retention_class import Basis
from storage.retention_service import RetentionService
from storage.scope import ALL_TENANTS

from .retention_samples import T0, Clock, add_recording, audit_actions, make_tenant, row

ANNA = Actor(name="anna@example.hu", origin="192.0.2.7")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=3))


@pytest.fixture
def service(pool: asyncpg.Pool, clock: Clock) -> RetentionService:
    return RetentionService(pool, audit=AuditLog(clock=clock), clock=clock)


async def test_a_tenant_defines_its_own_classes_beside_the_presets(
    pool: asyncpg.Pool, service: RetentionService
) -> None:
    acme = await make_tenant(pool, "acme")
    other = await make_tenant(pool, "globex")
    presets = await service.classes(None)
    assert [c.code for c in presets] == [
        "none",
        "quality_60d",
        "consent",
        "telecom_fault_reports",
        "contract_evidence",
        "financial_complaints",
        "investment_services",
        "utility_customer_service",
    ]
    created = await service.create_class(
        acme,
        code="Sales_90d",
        name="Sales calls, 90 days",
        days=90,
        actor=ANNA,
        source="balancing test 2026-03",
    )
    assert (created.code, created.days, created.statutory, created.basis) == (
        "sales_90d",
        90,
        False,
        Basis.LEGITIMATE_INTEREST,
    )
    assert created.code in [c.code for c in await service.classes(acme)]
    assert created.code not in [c.code for c in await service.classes(other)]
    with pytest.raises(ValueError, match="already has"):
        await service.create_class(acme, code="sales_90d", name="again", days=30, actor=ANNA)
    with pytest.raises(ValueError, match="preset"):
        await service.create_class(acme, code="quality_60d", name="mine", days=30, actor=ANNA)
    with pytest.raises(ValueError, match="statutory"):
        await service.create_class(
            acme, code="vat", name="VAT", days=2922, actor=ANNA, basis=Basis.LEGAL_OBLIGATION
        )
    with pytest.raises(NotFoundError):
        await service.create_class(uuid4(), code="x", name="x", days=1, actor=ANNA)
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'retention_class.create'")
    assert entry["actor"] == "anna@example.hu" and entry["tenant_id"] == acme
    assert entry["details"]["days"] == 90


async def test_options_are_a_default_and_up_to_four_more_visible_classes(
    pool: asyncpg.Pool, service: RetentionService
) -> None:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")
    await service.create_class(globex, code="globex_30d", name="Globex, 30 days", days=30, actor=ANNA)
    assert (await service.options(acme)).default is None
    chosen = await service.set_options(acme, "quality_60d", ["none", "contract_evidence"], ANNA)
    assert [c.code for c in chosen.all] == ["quality_60d", "none", "contract_evidence"]
    shown = await service.options(acme)
    assert shown.default is not None and shown.default.code == "quality_60d"
    assert [c.code for c in shown.others] == ["none", "contract_evidence"]
    with pytest.raises(ValueError, match="at most 4"):
        await service.set_options(
            acme,
            "quality_60d",
            ["none", "consent", "contract_evidence", "telecom_fault_reports", "financial_complaints"],
            ANNA,
        )
    with pytest.raises(NotFoundError, match="globex_30d"):
        await service.set_options(acme, "globex_30d", [], ANNA)
    with pytest.raises(NotFoundError):
        await service.set_options(acme, "no_such_class", [], ANNA)
    # a refused change leaves the options as they were
    assert [c.code for c in (await service.options(acme)).all] == ["quality_60d", "none", "contract_evidence"]
    entry = await pool.fetchrow("SELECT details FROM audit_log WHERE action = 'retention.set_options'")
    assert entry["details"] == {"old": [], "new": ["quality_60d", "none", "contract_evidence"]}


async def test_changing_a_recordings_class_sets_its_expiry_and_is_audited(
    pool: asyncpg.Pool, blobs: FileBlobStore, service: RetentionService
) -> None:
    acme = await make_tenant(pool, "acme")
    call = await add_recording(pool, blobs, tenant_id=acme)
    change = await service.change_retention(acme, call.id, class_code="contract_evidence", actor=ANNA)
    assert (change.old_class, change.new_class) == ("quality_60d", "contract_evidence")
    assert change.old_expires_at == T0 + timedelta(days=60)
    assert change.new_expires_at == T0 + timedelta(days=1826)
    stored = await row(pool, call.id)
    assert stored is not None and stored["expires_at"] == T0 + timedelta(days=1826)
    code = await pool.fetchval(
        "SELECT code FROM retention_classes WHERE id = $1", stored["retention_class_id"]
    )
    assert code == "contract_evidence"
    shorter = await service.change_retention(acme, call.id, days=14, actor=ANNA)
    assert (shorter.new_class, shorter.new_expires_at) == ("contract_evidence", T0 + timedelta(days=14))
    entries = await pool.fetch("SELECT * FROM audit_log WHERE action = 'retention.change' ORDER BY seq")
    assert [e["object_id"] for e in entries] == [str(call.id)] * 2
    assert entries[0]["details"]["old_class"] == "quality_60d"
    assert entries[0]["details"]["new_expires_at"] == "2031-11-28T14:03:07.250000Z"


async def test_a_statutory_recording_cannot_be_shortened(
    pool: asyncpg.Pool, blobs: FileBlobStore, service: RetentionService
) -> None:
    utility = await make_tenant(pool, "budapest-gas")
    call = await add_recording(
        pool, blobs, tenant_id=utility, class_code="utility_customer_service", basis="legal_obligation"
    )
    before = await row(pool, call.id)
    for kwargs in ({"days": 60}, {"class_code": "quality_60d"}, {"class_code": "telecom_fault_reports"}):
        with pytest.raises(StatutoryFloorError, match=r"Fgytv\. 17/B"):
            await service.change_retention(utility, call.id, actor=ANNA, **kwargs)  # type: ignore[arg-type]
    assert await row(pool, call.id) == before
    assert "retention.change" not in await audit_actions(pool)


async def test_investment_services_extend_to_seven_years_on_request_and_no_further(
    pool: asyncpg.Pool, blobs: FileBlobStore, service: RetentionService
) -> None:
    broker = await make_tenant(pool, "broker")
    call = await add_recording(
        pool, blobs, tenant_id=broker, class_code="investment_services", basis="legal_obligation"
    )
    change = await service.change_retention(broker, call.id, days=2557, actor=ANNA)
    assert change.new_expires_at == T0 + timedelta(days=2557)
    with pytest.raises(LifecycleError, match="at most 2557"):
        await service.change_retention(broker, call.id, days=2558, actor=ANNA)


async def test_a_tenants_options_bound_what_a_call_moves_to(
    pool: asyncpg.Pool, blobs: FileBlobStore, service: RetentionService
) -> None:
    acme = await make_tenant(pool, "acme")
    await service.set_options(acme, "quality_60d", ["none"], ANNA)
    call = await add_recording(pool, blobs, tenant_id=acme)
    with pytest.raises(LifecycleError, match=r"\(quality_60d, none\)"):
        await service.change_retention(acme, call.id, class_code="contract_evidence", actor=ANNA)
    change = await service.change_retention(acme, call.id, class_code="none", actor=ANNA)
    assert change.new_expires_at == T0 + timedelta(seconds=94.5)  # not kept: due at hang-up


async def test_a_held_recording_is_only_extended(
    pool: asyncpg.Pool, blobs: FileBlobStore, service: RetentionService, clock: Clock
) -> None:
    acme = await make_tenant(pool, "acme")
    call = await add_recording(pool, blobs, tenant_id=acme)
    await pool.execute(
        "INSERT INTO holds (id, tenant_id, recording_id, reason, placed_by) VALUES ($1, $2, $3, $4, $5)",
        uuid4(),
        acme,
        call.id,
        "complaint 2026/118 under investigation",
        "dpo@acme.hu",
    )
    with pytest.raises(UnderHoldError):
        await service.change_retention(acme, call.id, days=30, actor=ANNA)
    with pytest.raises(UnderHoldError):
        await service.change_retention(acme, call.id, class_code="none", actor=ANNA)
    assert (
        await service.change_retention(acme, call.id, days=120, actor=ANNA)
    ).new_expires_at == T0 + timedelta(days=120)


async def test_another_tenants_recording_is_not_found(
    pool: asyncpg.Pool, blobs: FileBlobStore, service: RetentionService
) -> None:
    acme = await make_tenant(pool, "acme")
    globex = await make_tenant(pool, "globex")
    call = await add_recording(pool, blobs, tenant_id=globex)
    with pytest.raises(NotFoundError):
        await service.change_retention(acme, call.id, days=1, actor=ANNA)
    with pytest.raises(NotFoundError):
        await service.change_retention(acme, uuid4(), days=1, actor=ANNA)
    # the operator acts on any tenant's recording under that tenant's rules
    assert (
        await service.change_retention(ALL_TENANTS, call.id, days=1, actor=ANNA)
    ).new_class == "quality_60d"
