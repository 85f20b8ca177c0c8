"""Reading the lists of holds, of access-request cases and of the audit trail itself is audited, one entry
per request in the reader's tenant (``hold.list``, ``access_request.list``, ``audit.list``), through the audit
log that records playbacks; a refused read writes none; another tenant neither sees our objects nor our
readers' entries, and its own reads land in its own trail. On the real catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from siprec_server.api import ApiServices
from storage.principal import Role
from storage.tenant_models import Tenant

from .conftest import OPERATOR, Account
from .matrix import AsKey, AsOther, AsUser, audit_rows, problem
from .test_recordings_api import LANDLINE

REASON = "NAIH complaint 2026/1187: keep every call of the complainant"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditedList:
    path: str
    action: str
    params: Mapping[str, Any]  # a filter that finds the tenant's two objects


LISTS = [
    AuditedList(path="/api/v1/holds", action="hold.list", params={"state": "all"}),
    AuditedList(path="/api/v1/access-requests", action="access_request.list", params={"state": "all"}),
    AuditedList(path="/api/v1/audit", action="audit.list", params={"object_kind": "hold"}),
]


async def two_of_each(api: ApiServices, tenant: Tenant) -> None:
    """Two holds (so two ``hold.place`` entries of object kind ``hold``) and two cases."""
    for number in (LANDLINE, "+36301234567"):
        await api.holds.place_on_number(tenant.id, number, reason=REASON, actor=OPERATOR)
        await api.access.open(tenant.id, requester="Kovács Éva", number=number, actor=OPERATOR)


@pytest.mark.parametrize("listed", LISTS, ids=lambda listed: listed.action)
async def test_each_list_request_is_one_entry_naming_what_was_read_not_the_filter_values(
    listed: AuditedList,
    as_user: AsUser,
    api_services: ApiServices,
    tenant: Tenant,
    accounts: dict[Role, Account],
    pool: asyncpg.Pool,
) -> None:
    await two_of_each(api_services, tenant)
    client = await as_user(Role.ADMIN)
    first = await client.get(listed.path, params={**listed.params, "limit": 1})
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 1 and first.json()["next_cursor"] is not None
    rest = await client.get(
        listed.path, params={**listed.params, "limit": 1, "cursor": first.json()["next_cursor"]}
    )
    assert rest.status_code == 200 and len(rest.json()["items"]) == 1
    rows = await audit_rows(pool, listed.action)
    assert [(r["actor"], r["origin"], r["tenant_id"], r["object_kind"], r["object_id"]) for r in rows] == [
        (accounts[Role.ADMIN].email, "203.0.113.7", tenant.id, None, None)
    ] * 2
    details = [dict(r["details"]) for r in rows]
    if listed.action == "audit.list":
        assert details == [
            {"by": ["object_kind"], "listed": 1},
            {"by": ["object_kind", "cursor"], "listed": 1},
        ]
    else:
        assert details == [{"state": "all", "listed": 1}] * 2
    assert all("Kovács" not in str(d) and LANDLINE not in str(d) for d in details)


async def test_the_trails_reader_sees_the_previous_read_never_its_own(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant
) -> None:
    client = await as_key(Role.AUDITOR)
    first = (await client.get("/api/v1/audit", params={"action": "audit.list"})).json()["items"]
    second = (await client.get("/api/v1/audit", params={"action": "audit.list"})).json()["items"]
    third = (await client.get("/api/v1/audit", params={"action": "audit.list"})).json()["items"]
    assert [len(first), len(second), len(third)] == [0, 1, 2]  # one entry per request, no more
    assert second[0]["actor"] == "api-key:auditor integration"
    assert second[0]["details"] == {"by": ["action"], "listed": 0}
    assert third[0]["seq"] > third[1]["seq"] == second[0]["seq"]


@pytest.mark.parametrize(
    ("role", "path", "params", "status"),
    [
        (Role.VIEWER, "/api/v1/holds", {}, 403),
        (Role.SUPERVISOR, "/api/v1/access-requests", {}, 403),
        (Role.VIEWER, "/api/v1/audit", {}, 403),
        (Role.DPO, "/api/v1/holds", {"state": "pending"}, 422),
        (Role.DPO, "/api/v1/access-requests", {"cursor": "not-a-cursor"}, 422),
        (Role.AUDITOR, "/api/v1/audit", {"since": "yesterday"}, 422),
        (Role.AUDITOR, "/api/v1/audit", {"cursor": "eyJrIjoiaG9sZHMiLCJwIjpbMF19"}, 422),  # another list's
    ],
)
async def test_a_refused_read_writes_no_entry(
    role: Role, path: str, params: dict[str, Any], status: int, as_user: AsUser, pool: asyncpg.Pool
) -> None:
    client = await as_user(role)
    problem(await client.get(path, params=params), status)
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE '%.list'") == 0


async def test_another_tenant_lists_none_of_ours_and_its_reads_stay_in_its_own_trail(
    as_user: AsUser,
    as_other_admin: AsOther,
    other_admin: Account,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
) -> None:
    await two_of_each(api_services, tenant)
    ours = await as_user(Role.ADMIN)
    for listed in LISTS:
        assert len((await ours.get(listed.path, params=listed.params)).json()["items"]) == 2
    intruder = await as_other_admin()
    for listed in LISTS:
        response = await intruder.get(listed.path, params=listed.params)
        assert response.status_code == 200 and response.json()["items"] == [], listed.path
    reads = await pool.fetch(
        "SELECT actor, tenant_id, details FROM audit_log WHERE action LIKE '%.list' ORDER BY seq"
    )
    assert [(r["actor"], r["tenant_id"], r["details"]["listed"]) for r in reads] == [
        ("admin@acme.example", tenant.id, 2),
        ("admin@acme.example", tenant.id, 2),
        ("admin@acme.example", tenant.id, 2),
        (other_admin.email, other_admin.tenant.id, 0),
        (other_admin.email, other_admin.tenant.id, 0),
        (other_admin.email, other_admin.tenant.id, 0),
    ]
    theirs = (await intruder.get("/api/v1/audit", params={"action": "hold.list"})).json()["items"]
    assert [e["actor"] for e in theirs] == [other_admin.email]  # not our reader's entry
    mine = (await ours.get("/api/v1/audit", params={"action": "audit.list"})).json()["items"]
    assert [e["actor"] for e in mine] == ["admin@acme.example"]
