"""Consent withdrawal and erasure through the API (GDPR Art. 7(3), 17): withdrawal by number erases the
consent-based calls and nothing else; erasing one call is refused under a hold or a statutory floor with the
reason; the role table and the cross-tenant answers, on the real catalogue."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from siprec_server.api import ApiServices
from storage.principal import Permission, Role
from storage.tenant_models import Tenant

from .conftest import OPERATOR, Account
from .matrix import AsKey, AsOther, AsUser, Endpoint, audit_rows, check_roles, problem, same_problem
from .test_recordings_api import T0, record_call

ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/api/v1/consent-withdrawals",
        permission=Permission.ERASE,
        success=201,
        body={"number": "06 1 234 5678"},
    ),
    Endpoint(
        method="DELETE",
        path="/api/v1/recordings/{ref}",
        permission=Permission.ERASE,
        success=200,
        params={"reason": "erasure request 2026/77"},
    ),
]


async def stored(pool: asyncpg.Pool, reference: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM recordings WHERE reference = $1", reference))


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_erases_only_with_the_erase_permission(
    role: Role, as_user: AsUser, api_services: ApiServices, tenant: Tenant
) -> None:
    async def targets() -> dict[str, Any]:
        return {"ref": (await record_call(api_services, tenant, seconds=1)).ref}

    client = await as_user(role)
    await check_roles(client, role, ENDPOINTS, targets)


async def test_withdrawal_by_number_erases_its_consent_calls_and_nothing_else(
    as_key: AsKey,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
    accounts: dict[Role, Account],
) -> None:
    consented = await record_call(api_services, tenant, basis="consent", class_code="consent")
    held = await record_call(
        api_services, tenant, basis="consent", class_code="consent", started_at=T0 + timedelta(hours=1)
    )
    await api_services.holds.place_on_recording(
        tenant.id, held.recording.id, reason="court order", actor=OPERATOR
    )
    kept = await record_call(api_services, tenant, started_at=T0 + timedelta(hours=2))  # legitimate interest
    strangers = await record_call(
        api_services, tenant, basis="consent", class_code="consent", numbers=("+3613456789",)
    )
    audio = Path(consented.recording.file_path or "")
    client = await as_key(Role.DPO)
    response = await client.post("/api/v1/consent-withdrawals", json={"number": "+36 (1) 234-5678"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["number"] == "+3612345678" and body["withdrawn_at"] == "2026-12-01T09:00:00Z"
    assert [(e["reference"], e["reason"]) for e in body["erased"]] == [(consented.ref, "consent_withdrawn")]
    assert body["erased"][0]["disposed_by"] == "api-key:dpo integration" and body["erased"][0]["files"] == 1
    assert body["held"] == [str(held.recording.id)] and body["in_progress"] == []
    assert not await stored(pool, consented.ref) and not await asyncio.to_thread(audio.exists)
    for call in (held, kept, strangers):
        assert await stored(pool, call.ref)
    state = await pool.fetchval("SELECT consent_state FROM recordings WHERE id = $1", held.recording.id)
    assert state == "withdrawn"
    rows = await audit_rows(pool, "consent.withdraw")
    assert [(r["object_id"], r["details"]) for r in rows] == [
        (str(body["id"]), {"erased": 1, "held": 1, "in_progress": 0})
    ]
    assert "+3612345678" not in str(rows[0]["details"])  # the audit trail keeps no number


async def test_erasing_one_recording_says_why_it_is_refused(
    as_user: AsUser, api_services: ApiServices, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    plain = await record_call(api_services, tenant)
    statutory = await record_call(
        api_services, tenant, basis="legal_obligation", class_code="utility_customer_service"
    )
    held = await record_call(api_services, tenant, started_at=T0 + timedelta(minutes=5))
    await api_services.holds.place_on_recording(
        tenant.id, held.recording.id, reason="police request 01000/2026", actor=OPERATOR
    )
    client = await as_user(Role.DPO)

    floor = problem(await client.delete(f"/api/v1/recordings/{statutory.ref}"), 409)
    assert floor["title"] == "Conflict"
    assert "Fgytv. 17/B §" in floor["detail"] and "GDPR Art. 17(3)(b)" in floor["detail"]
    hold = problem(await client.delete(f"/api/v1/recordings/{held.ref.lower()}"), 409)
    assert "legal hold" in hold["detail"] and "police request 01000/2026" in hold["detail"]
    assert await stored(pool, statutory.ref) and await stored(pool, held.ref)
    refusals = await audit_rows(pool, "recording.erase_refused")
    assert [(r["object_id"], r["details"]["rule"]) for r in refusals] == [
        (str(statutory.recording.id), "statutory"),
        (str(held.recording.id), "held"),
    ]

    erased = await client.delete(
        f"/api/v1/recordings/{plain.recording.id}", params={"reason": "request 2026/77"}
    )
    assert erased.status_code == 200, erased.text
    assert erased.json()["reference"] == plain.ref and erased.json()["reason"] == "erasure_request"
    assert not await stored(pool, plain.ref)
    rows = await audit_rows(pool, "recording.erase")
    assert [(r["actor"], r["object_id"], r["details"]["note"]) for r in rows] == [
        ("dpo@acme.example", str(plain.recording.id), "request 2026/77")
    ]
    again = problem(await client.delete(f"/api/v1/recordings/{plain.ref}"), 404)
    assert again["detail"] == "no such recording"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/v1/consent-withdrawals", {"json": {"number": "no number here"}}),
        ("POST", "/api/v1/consent-withdrawals", {"json": {"number": ""}}),
        ("POST", "/api/v1/consent-withdrawals", {"json": {"number": "+3612345678", "erase_all": True}}),
        ("POST", "/api/v1/consent-withdrawals", {"json": {}}),
        ("DELETE", "/api/v1/recordings/{ref}", {"params": {"reason": " "}}),
        ("DELETE", "/api/v1/recordings/{ref}", {"params": {"reason": "x" * 501}}),
    ],
)
async def test_bad_input_is_a_422_problem_and_erases_nothing(
    method: str,
    path: str,
    kwargs: dict[str, Any],
    as_user: AsUser,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
) -> None:
    call = await record_call(api_services, tenant, basis="consent", class_code="consent", seconds=1)
    client = await as_user(Role.ADMIN)
    problem(await client.request(method, path.format(ref=call.ref), **kwargs), 422)
    assert await stored(pool, call.ref)


async def test_another_tenants_recording_is_404_like_a_missing_one_and_audited(
    as_other_admin: AsOther,
    other_admin: Account,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
) -> None:
    call = await record_call(api_services, tenant, basis="consent", class_code="consent", seconds=1)
    intruder = await as_other_admin()
    for key in (call.ref, call.ref.lower(), str(call.recording.id)):
        foreign = problem(await intruder.delete(f"/api/v1/recordings/{key}"), 404)
        missing = problem(await intruder.delete("/api/v1/recordings/HT-0000-0000"), 404)
        assert same_problem(foreign, missing) and foreign["detail"] == "no such recording"
    rows = await audit_rows(pool, "recording.access_denied")
    assert [r["object_id"] for r in rows] == [
        call.ref,
        "HT-0000-0000",
        call.ref,
        "HT-0000-0000",
        str(call.recording.id),
        "HT-0000-0000",
    ]
    assert {(r["actor"], r["tenant_id"], r["origin"]) for r in rows} == {
        (other_admin.email, other_admin.tenant.id, "203.0.113.7")
    }
    # A withdrawal by the intruder reaches only its own tenant's calls.
    withdrawal = await intruder.post("/api/v1/consent-withdrawals", json={"number": "06 1 234 5678"})
    assert withdrawal.status_code == 201 and withdrawal.json()["erased"] == []
    assert await stored(pool, call.ref)
    assert await audit_rows(pool, "recording.erase") == []
