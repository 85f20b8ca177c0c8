"""A tenant's settings through the API: versioned recording policies, retention classes and options, numbers;
the role table (reading is ``view``, changing ``settings``) and the cross-tenant answers, on the real
catalogue."""

from __future__ import annotations

from typing import Any, get_args

import asyncpg
import pytest

from siprec_server.api import ApiServices
from siprec_server.api.settings_routes import PolicyIn
from storage.policies import PolicyScope
from storage.policy_rules import FORMATS, PolicyDirection, PolicySpec
from storage.principal import Permission, Role
from storage.tenant_models import Tenant

from .conftest import OPERATOR, Account
from .matrix import AsKey, AsOther, AsUser, Endpoint, audit_rows, check_roles, problem, same_problem

QUALITY = {
    "record": True,
    "basis": "legitimate_interest",
    "purpose": "quality assurance",
    "retention": "quality_60d",
}
V, S = Permission.VIEW, Permission.SETTINGS

ENDPOINTS = [
    Endpoint(method="GET", path="/api/v1/policies", permission=V, success=200),
    Endpoint(method="GET", path="/api/v1/policies/history", permission=V, success=200),
    Endpoint(method="GET", path="/api/v1/policies/{policy}", permission=V, success=200),
    Endpoint(
        method="POST",
        path="/api/v1/policies",
        permission=S,
        success=201,
        body={**QUALITY, "number_id": "{number}", "direction": "inbound"},
    ),
    Endpoint(method="GET", path="/api/v1/retention-classes", permission=V, success=200),
    Endpoint(
        method="POST",
        path="/api/v1/retention-classes",
        permission=S,
        success=201,
        body={"code": "{code}", "name": "Sales calls, 90 days", "days": 90, "source": "sales balancing test"},
    ),
    Endpoint(
        method="PUT",
        path="/api/v1/retention-options",
        permission=S,
        success=200,
        body={"default": "quality_60d", "others": ["none", "contract_evidence"]},
    ),
    Endpoint(method="GET", path="/api/v1/numbers", permission=V, success=200),
    Endpoint(
        method="POST",
        path="/api/v1/numbers",
        permission=S,
        success=201,
        body={"kind": "extension", "value": "{ext}"},
    ),
    Endpoint(method="DELETE", path="/api/v1/numbers/{number}", permission=S, success=200),
]
OBJECT_ENDPOINTS = [
    e for e in ENDPOINTS if "{policy}" in e.path or "{number}" in e.path or "number_id" in (e.body or {})
]
_serial = iter(range(100, 10_000))


async def settings_targets(api: ApiServices, tenant: Tenant) -> dict[str, Any]:
    """A fresh number of the tenant and a policy on it, and a class code and an extension not used yet."""
    serial = next(_serial)
    number = await api.tenants.add_number(tenant.id, f"+36 1 234 {serial:04d}", actor=OPERATOR)
    policy = await api.policies.set(
        PolicyScope.for_number(tenant.id, number.id),
        PolicySpec(direction=PolicyDirection.OUTBOUND, record=False),
        actor=OPERATOR,
    )
    return {"number": number.id, "policy": policy.id, "code": f"sales_{serial}", "ext": str(serial)}


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_reads_the_settings_and_only_settings_changes_them(
    role: Role, as_user: AsUser, api_services: ApiServices, tenant: Tenant
) -> None:
    client = await as_user(role)
    await check_roles(client, role, ENDPOINTS, lambda: settings_targets(api_services, tenant))


async def test_a_policy_change_is_a_new_version_and_the_old_one_stays_on_record(
    as_key: AsKey, pool: asyncpg.Pool, tenant: Tenant
) -> None:
    client = await as_key(Role.ADMIN)
    first = await client.post("/api/v1/policies", json=QUALITY)
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert (v1["version"], v1["scope"], v1["direction"], v1["retention"]) == (
        1,
        "tenant",
        "both",
        "quality_60d",
    )
    assert v1["superseded_at"] is None and v1["created_by"] == "api-key:admin integration"
    same = await client.post("/api/v1/policies", json=QUALITY)
    assert same.status_code == 200 and same.json() == v1
    consent = {
        "basis": "consent",
        "purpose": "customer service",
        "retention": "CONSENT",
        "consent": {"window_seconds": 8, "yes_digit": "1", "no_digit": "2", "stop_digit": "#"},
    }
    second = await client.post("/api/v1/policies", json=consent)
    assert second.status_code == 201, second.text
    v2 = second.json()
    assert v2["version"] == 2 and v2["retention"] == "consent"
    assert v2["consent"] == {
        "window_seconds": 8,
        "yes_digit": "1",
        "no_digit": "2",
        "stop_digit": "#",
        "prompt_version": "v1",
    }
    assert (await client.get("/api/v1/policies")).json() == {"items": [v2], "next_cursor": None}
    history = (await client.get("/api/v1/policies/history", params={"limit": 1})).json()
    assert [p["version"] for p in history["items"]] == [1] and history["items"][0]["superseded_at"]
    rest = (await client.get("/api/v1/policies/history", params={"cursor": history["next_cursor"]})).json()
    assert [p["version"] for p in rest["items"]] == [2] and rest["next_cursor"] is None
    assert (await client.get(f"/api/v1/policies/{v1['id']}")).json()["version"] == 1
    changes = await audit_rows(pool, "policy.change")
    assert [(r["object_id"], r["tenant_id"]) for r in changes] == [
        (str(v1["id"]), tenant.id),
        (str(v2["id"]), tenant.id),
    ]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            {"record": True},
            "recording needs a legal basis (GDPR Art. 6(1)): legal_obligation, consent or legitimate_interest; "
            "recording needs a purpose (GDPR Art. 5(1)(b)), e.g. 'quality assurance'; "
            "recording needs a retention class (GDPR Art. 5(1)(e)), e.g. quality_60d",
        ),
        (
            {**QUALITY, "retention": "utility_customer_service"},
            "utility_customer_service is a statutory retention class",
        ),
        ({**QUALITY, "retention": "forever"}, "no retention class 'forever' (a preset or the tenant's own)"),
        ({**QUALITY, "format": "aiff"}, "the request is not valid: see errors"),
        ({**QUALITY, "purpose": "\x00"}, "the request is not valid: see errors"),
        (
            {
                **QUALITY,
                "basis": "consent",
                "retention": "consent",
                "consent": {"yes_digit": "1", "no_digit": "1"},
            },
            "the yes, no and stop keys must differ",
        ),
        (
            {**QUALITY, "basis": "consent", "retention": "consent", "consent": {"window_seconds": 600}},
            "the request is not valid: see errors",
        ),
        ({**QUALITY, "owner": "me"}, "the request is not valid: see errors"),
    ],
)
async def test_a_policy_that_breaks_a_rule_is_a_422_problem_naming_it(
    body: dict[str, Any], says: str, as_user: AsUser, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.ADMIN)
    assert says in problem(await client.post("/api/v1/policies", json=body), 422)["detail"]
    assert await pool.fetchval("SELECT count(*) FROM recording_policies WHERE tenant_id IS NOT NULL") == 0


def test_the_policy_formats_are_the_catalogues() -> None:
    assert get_args(PolicyIn.model_fields["format"].annotation) == FORMATS


async def test_retention_classes_and_the_tenants_options(
    as_user: AsUser, as_other_admin: AsOther, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.ADMIN)
    created = await client.post(
        "/api/v1/retention-classes",
        json={
            "code": "Sales_90D",
            "name": "Sales calls, 90 days",
            "days": 90,
            "source": "sales balancing test",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "code": "sales_90d",
        "name": "Sales calls, 90 days",
        "days": 90,
        "max_days": None,
        "statutory": False,
        "basis": "legitimate_interest",
        "source": "sales balancing test",
        "own": True,
    }
    listed = (await client.get("/api/v1/retention-classes")).json()["items"]
    assert [c["code"] for c in listed if c["own"]] == ["sales_90d"] and len(listed) == 9
    assert [c["code"] for c in listed[:2]] == ["none", "quality_60d"]
    taken = problem(
        await client.post("/api/v1/retention-classes", json={"code": "sales_90d", "name": "x", "days": 1}),
        422,
    )
    assert taken["detail"] == "this tenant already has a retention class sales_90d"
    preset = problem(
        await client.post("/api/v1/retention-classes", json={"code": "consent", "name": "x", "days": 1}), 422
    )
    assert preset["detail"] == "consent is the code of a preset retention class; choose another"
    for bad in (
        {"code": "x", "name": "x", "days": 1, "basis": "legal_obligation"},
        {"code": "x", "name": "x", "days": 4000},
    ):
        problem(await client.post("/api/v1/retention-classes", json=bad), 422)

    options = await client.put(
        "/api/v1/retention-options",
        json={"default": "quality_60d", "others": ["none", "sales_90d", "contract_evidence", "consent"]},
    )
    assert options.status_code == 200, options.text
    assert [options.json()["default"]["code"], *(c["code"] for c in options.json()["others"])] == [
        "quality_60d",
        "none",
        "sales_90d",
        "contract_evidence",
        "consent",
    ]
    too_many = {
        "default": "quality_60d",
        "others": ["none", "sales_90d", "contract_evidence", "consent", "telecom_fault_reports"],
    }
    problem(await client.put("/api/v1/retention-options", json=too_many), 422)
    twice = problem(
        await client.put("/api/v1/retention-options", json={"default": "none", "others": ["none"]}), 422
    )
    assert twice["detail"] == "retention class none is offered twice"
    # Another tenant's own class is unknown to this one, exactly like a code nobody has.
    other = await as_other_admin()
    theirs = problem(await other.put("/api/v1/retention-options", json={"default": "sales_90d"}), 422)
    nobodys = problem(await other.put("/api/v1/retention-options", json={"default": "sales_91d"}), 422)
    assert theirs["detail"].replace("90", "91") == nobodys["detail"]
    assert [
        c["code"] for c in (await other.get("/api/v1/retention-classes")).json()["items"] if c["own"]
    ] == []
    rows = await audit_rows(pool, "retention.set_options")
    assert len(rows) == 1 and rows[0]["details"]["new"][2] == "sales_90d"


async def test_numbers_in_any_written_form_and_another_tenants_number_is_a_conflict(
    as_user: AsUser, as_other_admin: AsOther, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.ADMIN)
    for body, value in (
        ({"value": "06 1 234 5678", "label": "front desk"}, "+3612345678"),
        ({"kind": "range", "value": "+36 1 234 56xx"}, "+36123456"),
        ({"kind": "extension", "value": "201"}, "201"),
    ):
        response = await client.post("/api/v1/numbers", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["value"] == value
    listed = (await client.get("/api/v1/numbers", params={"limit": 2})).json()
    rest = (await client.get("/api/v1/numbers", params={"cursor": listed["next_cursor"]})).json()
    assert [(n["kind"], n["value"]) for n in listed["items"] + rest["items"]] == [
        ("extension", "201"),
        ("number", "+3612345678"),
        ("range", "+36123456"),
    ]
    assert listed["items"][1]["label"] == "front desk"
    again = problem(await client.post("/api/v1/numbers", json={"value": "+3612345678"}), 409)
    assert again["detail"] == "number +3612345678 is already one of this tenant's"
    other = await as_other_admin()
    clash = problem(await other.post("/api/v1/numbers", json={"value": "+36 1 234 5678"}), 409)
    assert clash["detail"] == "number +3612345678 already belongs to another tenant"
    assert "acme" not in str(clash)
    for bad in (
        {"value": "12"},
        {"kind": "range", "value": "+3612345678"},
        {"kind": "fax", "value": "1"},
        {"value": ""},
    ):
        problem(await client.post("/api/v1/numbers", json=bad), 422)
    number_id = listed["items"][1]["id"]
    removed = await client.delete(f"/api/v1/numbers/{number_id}")
    assert removed.status_code == 200 and removed.json()["value"] == "+3612345678"
    problem(await client.delete(f"/api/v1/numbers/{number_id}"), 404)
    assert [r["object_id"] for r in await audit_rows(pool, "number.remove")] == [str(number_id)]


@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_another_tenants_policy_or_number_is_404_like_a_missing_one_and_audited(
    endpoint: Endpoint,
    as_other_admin: AsOther,
    other_admin: Account,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
) -> None:
    ids = await settings_targets(api_services, tenant)
    intruder = await as_other_admin()
    missing = 2**62
    foreign = problem(await endpoint.request(intruder, ids), 404)
    absent = problem(await endpoint.request(intruder, {**ids, "number": missing, "policy": missing}), 404)
    assert same_problem(foreign, absent)
    kind = "recording_policy" if "{policy}" in endpoint.path else "tenant_number"
    target = ids["policy" if kind == "recording_policy" else "number"]
    rows = await audit_rows(pool, f"{kind}.access_denied")
    assert [(r["actor"], r["tenant_id"], r["object_id"]) for r in rows] == [
        (other_admin.email, other_admin.tenant.id, str(target)),
        (other_admin.email, other_admin.tenant.id, str(missing)),
    ]
    assert [n.id for n in await api_services.tenants.numbers(tenant.id)] == [ids["number"]]
    assert await pool.fetchval("SELECT count(*) FROM recording_policies WHERE tenant_id = $1", tenant.id) == 1


async def test_the_history_of_another_tenants_number_is_404_and_audited(
    as_other_admin: AsOther, api_services: ApiServices, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    ids = await settings_targets(api_services, tenant)
    intruder = await as_other_admin()
    foreign = problem(
        await intruder.get("/api/v1/policies/history", params={"number_id": ids["number"]}), 404
    )
    absent = problem(await intruder.get("/api/v1/policies/history", params={"number_id": 2**62}), 404)
    assert same_problem(foreign, absent) and foreign["detail"] == "no such number"
    assert [r["object_id"] for r in await audit_rows(pool, "tenant_number.access_denied")] == [
        str(ids["number"]),
        str(2**62),
    ]
    assert (await intruder.get("/api/v1/policies")).json()["items"] == []
    assert (await intruder.get("/api/v1/numbers")).json()["items"] == []
