"""The audit trail through the API: read-only, the caller's tenant's entries only, filtered and paged newest
first; the hash chain checked (the whole chain, which links every tenant's entries) and a changed entry
found; the role table, on the real catalogue."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from siprec_server.api import ApiServices
from storage.audit import Actor, AuditEntry
from storage.principal import Permission, Role
from storage.tenant_models import Tenant

from .conftest import START, Account, Clock
from .matrix import AsKey, AsOther, AsUser, Endpoint, check_roles, problem

ENDPOINTS = [
    Endpoint(method="GET", path="/api/v1/audit", permission=Permission.AUDIT, success=200),
    Endpoint(method="GET", path="/api/v1/audit/verify", permission=Permission.AUDIT, success=200),
]
ANNA = Actor(name="anna@acme.example", origin="192.0.2.33")


async def nothing() -> dict[str, Any]:
    return {}


async def record(api: ApiServices, tenant: Tenant, action: str, object_id: str, actor: Actor = ANNA) -> None:
    await api.audit.record(
        api.pool,
        AuditEntry(
            actor=actor,
            action=action,
            tenant_id=tenant.id,
            object_kind="recording",
            object_id=object_id,
            details={"reference": "HT-7K3M-Q9RX", "format": "flac"},
        ),
    )


@pytest.mark.parametrize("role", list(Role))
async def test_only_the_audit_permission_reads_the_trail(role: Role, as_user: AsUser) -> None:
    client = await as_user(role)
    await check_roles(client, role, ENDPOINTS, nothing)


async def test_the_trail_is_the_tenants_own_filtered_and_paged_newest_first(
    as_key: AsKey,
    api_services: ApiServices,
    tenant: Tenant,
    other_tenant: Tenant,
    other_admin: Account,
    clock: Clock,
) -> None:
    for minute in range(5):
        clock.current = START + timedelta(minutes=minute)
        await record(
            api_services, tenant, "recording.play" if minute % 2 else "recording.download", f"r{minute}"
        )
    await record(api_services, other_tenant, "recording.play", "r1", Actor(name="spy@globex.example"))
    client = await as_key(Role.AUDITOR)

    async def entries(params: dict[str, Any]) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while True:
            response = await client.get("/api/v1/audit", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= params.get("limit", 50)
            seen += page["items"]
            if page["next_cursor"] is None:
                return seen
            params = {**params, "cursor": page["next_cursor"]}

    everything = await entries({"limit": 2})
    ours = [e for e in everything if e["object_kind"] == "recording"]
    assert [e["object_id"] for e in ours] == ["r4", "r3", "r2", "r1", "r0"]
    assert all(e["actor"] != "spy@globex.example" for e in everything)
    assert {e["action"] for e in everything} >= {"tenant.create", "api_key.create", "recording.play"}
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)
    first = ours[0]
    assert first["at"] == "2026-12-01T09:04:00Z" and first["origin"] == "192.0.2.33"
    assert first["details"] == {"reference": "HT-7K3M-Q9RX", "format": "flac"}
    assert len(first["hash"]) == 64 and len(first["prev_hash"]) == 64

    plays = await entries({"action": "recording.play", "limit": 1})
    assert [e["object_id"] for e in plays] == ["r3", "r1"]
    assert [e["object_id"] for e in await entries({"object_kind": "recording", "object_id": "r1"})] == ["r1"]
    assert [
        e["object_id"]
        for e in await entries(
            {"actor": ANNA.name, "since": "2026-12-01T09:01:00Z", "until": "2026-12-01T10:03:00+01:00"}
        )
    ] == ["r2", "r1"]
    assert await entries({"actor": "spy@globex.example"}) == []
    other = (await client.get("/api/v1/audit", params={"object_id": "r1", "action": "recording.play"})).json()
    assert [e["actor"] for e in other["items"]] == [ANNA.name]


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "bm90IGEgY3Vyc29y"},
        {"cursor": "eyJrIjoiYXVkaXQiLCJwIjpbInNldmVuIl19"},  # {"k":"audit","p":["seven"]}
        {"cursor": "eyJrIjoiYXVkaXQiLCJwIjpbMF19"},  # {"k":"audit","p":[0]}
        {"since": "2026-12-01T09:00:00"},
        {"until": "yesterday"},
        {"limit": 0},
        {"limit": 201},
        {"action": ""},
        {"actor": "anna\x00"},
    ],
)
async def test_a_filter_that_is_not_one_is_a_422_problem(params: dict[str, Any], as_user: AsUser) -> None:
    client = await as_user(Role.AUDITOR)
    problem(await client.get("/api/v1/audit", params=params), 422)


async def test_the_chain_check_covers_the_whole_chain_and_finds_a_changed_entry(
    as_user: AsUser, api_services: ApiServices, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.AUDITOR)
    intact = (await client.get("/api/v1/audit/verify")).json()
    total = await pool.fetchval("SELECT count(*) FROM audit_log")
    head = await pool.fetchval("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    assert intact == {
        "scope": "whole_chain",
        "ok": True,
        "from_seq": 1,
        "entries": total,
        "last_seq": total,
        "head_hash": head,
        "broken_seq": None,
        "problem": None,
        "detail": None,
    }
    later = (await client.get("/api/v1/audit/verify", params={"from_seq": total})).json()
    assert later["ok"] and later["entries"] == 1
    problem(await client.get("/api/v1/audit/verify", params={"from_seq": 0}), 422)

    await record(api_services, tenant, "recording.play", "r9")
    changed = await pool.fetchval("SELECT max(seq) FROM audit_log")
    async with pool.acquire() as conn, conn.transaction():  # what only the database owner can do
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute("UPDATE audit_log SET actor = 'someone@else.example' WHERE seq = $1", changed)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    broken = (await client.get("/api/v1/audit/verify")).json()
    assert (broken["ok"], broken["problem"], broken["broken_seq"]) == (False, "hash", changed)
    assert broken["detail"] == f"entry {changed} (recording.play) does not match its hash: it was changed"
    assert broken["entries"] == changed - 1


async def test_the_trail_is_read_only_and_each_tenant_sees_its_own(
    as_user: AsUser, as_other_admin: AsOther, other_admin: Account
) -> None:
    client = await as_user(Role.ADMIN)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        problem(await client.request(method, "/api/v1/audit", json={}), 405)
    ours = (await client.get("/api/v1/audit", params={"action": "user.create", "limit": 200})).json()["items"]
    assert len(ours) == len(Role)
    theirs = (await (await as_other_admin()).get("/api/v1/audit", params={"action": "user.create"})).json()
    assert [e["object_id"] for e in theirs["items"]] == [str(other_admin.user.id)]
