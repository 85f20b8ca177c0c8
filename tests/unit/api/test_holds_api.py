"""Legal holds through the API (GDPR Art. 18): a number's calls held in any written form, the two-person
release, the role table and the cross-tenant answers, on the real catalogue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from siprec_server.api import ApiServices
from storage.audit import Actor
from storage.principal import Permission, Role
from storage.scope import ALL_TENANTS
from storage.tenant_models import Tenant

from .conftest import OPERATOR, Account
from .matrix import AsKey, AsOther, AsUser, Endpoint, audit_rows, check_roles, problem, same_problem
from .test_recordings_api import LANDLINE, T0, record_call

COLLEAGUE = Actor(name="colleague@acme.example", origin="198.51.100.4")
REASON = "NAIH complaint 2026/1187: keep every call of the complainant"

ENDPOINTS = [
    Endpoint(method="GET", path="/api/v1/holds", permission=Permission.HOLD, success=200),
    Endpoint(
        method="POST",
        path="/api/v1/holds",
        permission=Permission.HOLD,
        success=201,
        body={"number": "06 1 234 5678", "reason": REASON},
    ),
    Endpoint(method="GET", path="/api/v1/holds/{hold}", permission=Permission.HOLD, success=200),
    Endpoint(
        method="POST", path="/api/v1/holds/{hold}/release-request", permission=Permission.HOLD, success=200
    ),
    Endpoint(
        method="POST",
        path="/api/v1/holds/{requested}/release-approval",
        permission=Permission.HOLD,
        success=200,
    ),
]
OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e.path]


async def hold_targets(api: ApiServices, tenant: Tenant) -> dict[str, Any]:
    """A fresh hold, and one whose release a colleague asked for (for someone else to approve)."""
    fresh = await api.holds.place_on_number(tenant.id, "+36 1 234 5678", reason=REASON, actor=OPERATOR)
    asked = await api.holds.place_on_number(tenant.id, "+36 30 123 4567", reason=REASON, actor=OPERATOR)
    await api.holds.request_release(tenant.id, asked.hold.id, COLLEAGUE)
    return {"hold": fresh.hold.id, "requested": asked.hold.id}


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_the_holds_only_with_the_hold_permission(
    role: Role, as_user: AsUser, api_services: ApiServices, tenant: Tenant
) -> None:
    client = await as_user(role)
    await check_roles(client, role, ENDPOINTS, lambda: hold_targets(api_services, tenant))


async def test_an_api_key_of_a_dpo_places_and_reads_holds(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant
) -> None:
    client = await as_key(Role.DPO)
    ids = await hold_targets(api_services, tenant)
    for endpoint in ENDPOINTS:
        assert (await endpoint.request(client, ids)).status_code == endpoint.success, endpoint


async def test_a_number_hold_in_any_written_form_covers_the_calls_and_stops_erasure(
    as_user: AsUser,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
    accounts: dict[Role, Account],
) -> None:
    inside = await record_call(api_services, tenant, started_at=T0)
    before = await record_call(api_services, tenant, started_at=T0 - timedelta(days=3))
    other = await record_call(api_services, tenant, numbers=("+3613456789",))
    client = await as_user(Role.DPO)
    response = await client.post(
        "/api/v1/holds",
        json={
            "number": "06 (1) 234-5678",
            "reason": REASON,
            "from_at": (T0 - timedelta(days=1)).isoformat(),
            "until_at": (T0 + timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    placed = response.json()
    assert placed["covered"] == [str(inside.recording.id)]
    hold = placed["hold"]
    assert hold["number"] == LANDLINE and hold["target"] == "number" and hold["state"] == "active"
    assert hold["placed_by"] == "dpo@acme.example" and hold["reason"] == REASON
    assert hold["from_at"] == "2026-11-27T14:03:07.250000Z"
    # The held call cannot be erased; the one outside the window and the other number's can.
    erase = await client.delete(f"/api/v1/recordings/{inside.ref}")
    refusal = problem(erase, 409)
    assert "legal hold" in refusal["detail"] and REASON in refusal["detail"]
    assert (await client.delete(f"/api/v1/recordings/{before.ref}")).status_code == 200
    assert (await client.delete(f"/api/v1/recordings/{other.ref}")).status_code == 200
    # The service audited the placement once, as the user, from the client's address.
    placed_rows = await audit_rows(pool, "hold.place")
    assert [(r["actor"], r["origin"], r["object_id"]) for r in placed_rows] == [
        (accounts[Role.DPO].email, "203.0.113.7", hold["id"])
    ]
    assert placed_rows[0]["details"]["covered"] == 1


async def test_releasing_a_hold_takes_two_different_people(
    as_user: AsUser, api_services: ApiServices, tenant: Tenant, accounts: dict[Role, Account]
) -> None:
    call = await record_call(api_services, tenant)
    dpo, admin = await as_user(Role.DPO), await as_user(Role.ADMIN)
    hold_id = (await dpo.post("/api/v1/holds", json={"number": "+3612345678", "reason": REASON})).json()[
        "hold"
    ]["id"]
    early = problem(await dpo.post(f"/api/v1/holds/{hold_id}/release-approval"), 422)
    assert early["detail"] == f"release of hold {hold_id} has not been requested; someone must ask first"
    asked = await dpo.post(f"/api/v1/holds/{hold_id}/release-request")
    assert asked.status_code == 200
    assert asked.json()["state"] == "release_requested"
    assert asked.json()["release_requested_by"] == accounts[Role.DPO].email
    again = problem(await admin.post(f"/api/v1/holds/{hold_id}/release-request"), 422)
    assert "already requested by dpo@acme.example" in again["detail"]
    same = problem(await dpo.post(f"/api/v1/holds/{hold_id}/release-approval"), 409)
    assert same["detail"] == (
        f"dpo@acme.example asked for the release of hold {hold_id}; a different person must approve it"
    )
    problem(await dpo.delete(f"/api/v1/recordings/{call.ref}"), 409)  # still in force
    approved = await admin.post(f"/api/v1/holds/{hold_id}/release-approval")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["hold"]["state"] == "released" and body["hold"]["released_by"] == "admin@acme.example"
    assert body["unrestricted"] == [str(call.recording.id)]
    problem(await admin.post(f"/api/v1/holds/{hold_id}/release-approval"), 422)
    assert (await dpo.delete(f"/api/v1/recordings/{call.ref}")).status_code == 200


async def test_the_list_filters_by_state_and_pages_newest_first(
    as_user: AsUser, api_services: ApiServices, tenant: Tenant, clock: Any
) -> None:
    made = []
    for minutes, number in enumerate(("+3612345678", "+3613456789", "+36301234567", "201")):
        clock.advance(timedelta(minutes=minutes))
        made.append(
            (await api_services.holds.place_on_number(tenant.id, number, reason=REASON, actor=OPERATOR)).hold
        )
    await api_services.holds.request_release(tenant.id, made[0].id, COLLEAGUE)
    await api_services.holds.approve_release(tenant.id, made[0].id, OPERATOR)
    await api_services.holds.place_on_number(
        ALL_TENANTS, "+3612345678", reason="operator's hold", actor=OPERATOR
    )
    client = await as_user(Role.DPO)

    async def ids(state: str, limit: int) -> list[str]:
        seen: list[str] = []
        params: dict[str, Any] = {"state": state, "limit": limit}
        while True:
            page = (await client.get("/api/v1/holds", params=params)).json()
            assert len(page["items"]) <= limit
            seen += [item["id"] for item in page["items"]]
            if page["next_cursor"] is None:
                return seen
            params["cursor"] = page["next_cursor"]

    newest_first = [str(h.id) for h in reversed(made)]
    assert await ids("all", 1) == await ids("all", 50) == newest_first  # the operator's is not the tenant's
    assert await ids("active", 2) == newest_first[:3]
    assert await ids("released", 1) == [str(made[0].id)]
    assert (await client.get("/api/v1/holds")).json()["items"][0]["number"] == "201"  # an extension's digits
    cursor = (await client.get("/api/v1/holds", params={"limit": 1})).json()["next_cursor"]
    wrong_list = await client.get("/api/v1/numbers", params={"cursor": cursor})
    assert problem(wrong_list, 422)["errors"][0]["field"] == "query.cursor"
    for bad in ("not-a-cursor", "e30", cursor[:-3]):
        problem(await client.get("/api/v1/holds", params={"cursor": bad}), 422)
    problem(await client.get("/api/v1/holds", params={"state": "pending"}), 422)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"number": "not a number", "reason": REASON}, "'not a number' is not a phone number"),
        ({"number": "+3612345678", "reason": "   "}, "the request is not valid: see errors"),
        ({"number": "+3612345678", "reason": "keep\x00it"}, "the request is not valid: see errors"),
        ({"number": "+3612345678"}, "the request is not valid: see errors"),
        (
            {
                "number": "+3612345678",
                "reason": REASON,
                "from_at": "2026-12-01T10:00:00+01:00",
                "until_at": "2026-12-01T09:00:00Z",
            },
            "a hold's time range must start before it ends",
        ),
        (
            {"number": "+3612345678", "reason": REASON, "from_at": "2026-12-01T10:00:00"},
            "the request is not valid: see errors",
        ),
        (
            {"number": "+3612345678", "reason": REASON, "from_at": "0001-01-01T00:00:00+01:00"},
            "the request is not valid: see errors",
        ),
        (
            {"number": "+3612345678", "reason": REASON, "recording_id": str(uuid4())},
            "the request is not valid: see errors",
        ),
    ],
)
async def test_a_hold_that_is_not_one_is_a_422_problem(
    body: dict[str, Any], says: str, as_user: AsUser, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.ADMIN)
    assert problem(await client.post("/api/v1/holds", json=body), 422)["detail"] == says
    assert await pool.fetchval("SELECT count(*) FROM holds") == 0


@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_another_tenants_hold_is_404_like_a_missing_one_and_audited(
    endpoint: Endpoint,
    as_other_admin: AsOther,
    other_admin: Account,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
) -> None:
    ids = await hold_targets(api_services, tenant)
    intruder = await as_other_admin()
    missing = uuid4()
    foreign = problem(await endpoint.request(intruder, ids), 404)
    absent = problem(await endpoint.request(intruder, {"hold": missing, "requested": missing}), 404)
    assert same_problem(foreign, absent) and foreign["detail"] == "no such hold"
    target = ids["requested" if "{requested}" in endpoint.path else "hold"]
    rows = await audit_rows(pool, "hold.access_denied")
    assert [(r["actor"], r["tenant_id"], r["object_kind"], r["object_id"]) for r in rows] == [
        (other_admin.email, other_admin.tenant.id, "hold", str(target)),
        (other_admin.email, other_admin.tenant.id, "hold", str(missing)),
    ]
    assert rows[0]["origin"] == "203.0.113.7" and rows[0]["details"]["method"] == endpoint.method
    # The owner's holds are as they were; the intruder's list is empty.
    held = await api_services.holds.get(tenant.id, UUID(str(ids["hold"])))
    requested = await api_services.holds.get(tenant.id, UUID(str(ids["requested"])))
    assert held.release_requested_by is None and requested.released_at is None
    assert (await intruder.get("/api/v1/holds", params={"state": "all"})).json()["items"] == []
