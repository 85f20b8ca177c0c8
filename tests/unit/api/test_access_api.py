"""Access requests through the API (GDPR Art. 15): a case opened for a number as the person wrote it finds
the call stored in E.164, is due in one calendar month, exports a real bundle (sealed audio decrypted into
it), is delivered and closed; the role table and the cross-tenant answers, on the real catalogue."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from siprec_server.api import ApiServices
from storage.principal import Permission, Role
from storage.tenant_models import Tenant

from .conftest import OPERATOR, Account, Clock
from .matrix import AsKey, AsOther, AsUser, Endpoint, audit_rows, check_roles, problem, same_problem
from .test_recordings_api import LANDLINE, T0, record_call

REQUESTER = "Kovács Éva, kovacs.eva@example.hu"

ENDPOINTS = [
    Endpoint(
        method="POST",
        path="/api/v1/access-requests",
        permission=Permission.ACCESS_REQUEST,
        success=201,
        body={"requester": REQUESTER, "number": "06 1 234 5678"},
    ),
    Endpoint(method="GET", path="/api/v1/access-requests", permission=Permission.ACCESS_REQUEST, success=200),
    Endpoint(
        method="GET", path="/api/v1/access-requests/{case}", permission=Permission.ACCESS_REQUEST, success=200
    ),
    Endpoint(
        method="POST",
        path="/api/v1/access-requests/{case}/export",
        permission=Permission.ACCESS_REQUEST,
        success=200,
    ),
    Endpoint(
        method="POST",
        path="/api/v1/access-requests/{exported}/delivered",
        permission=Permission.ACCESS_REQUEST,
        success=200,
        body={"note": "sent by registered post, RL 1234567"},
    ),
    Endpoint(
        method="POST",
        path="/api/v1/access-requests/{case}/close",
        permission=Permission.ACCESS_REQUEST,
        success=200,
    ),
]
OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e.path]


async def case_targets(api: ApiServices, tenant: Tenant) -> dict[str, Any]:
    """An open case, and one already exported (for the delivery)."""
    opened = await api.access.open(tenant.id, requester=REQUESTER, number="+36 1 234 5678", actor=OPERATOR)
    exported = await api.access.open(tenant.id, requester=REQUESTER, number="+36 1 234 5678", actor=OPERATOR)
    await api.access.export(tenant.id, exported.id, actor=OPERATOR)
    return {"case": opened.id, "exported": exported.id}


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_access_requests_only_with_their_permission(
    role: Role, as_user: AsUser, api_services: ApiServices, tenant: Tenant
) -> None:
    await record_call(api_services, tenant, seconds=1)
    client = await as_user(role)
    await check_roles(client, role, ENDPOINTS, lambda: case_targets(api_services, tenant))


async def test_a_case_for_a_number_as_written_finds_the_call_exports_delivers_and_closes(
    as_key: AsKey,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    call = await record_call(api_services, tenant)
    await record_call(api_services, tenant, numbers=("+3613456789",))  # someone else's call
    client = await as_key(Role.DPO)
    opened = await client.post(
        "/api/v1/access-requests", json={"requester": REQUESTER, "number": "06 1 234 5678"}
    )
    assert opened.status_code == 201, opened.text
    case = opened.json()
    # Received 2026-12-01 10:00 in Budapest: due at the end of 1 January (Art. 12(3)).
    assert case["due_at"] == "2027-01-01T22:59:59.999999Z" and case["received_at"] == "2026-12-01T09:00:00Z"
    assert case["number"] == LANDLINE and case["status"] == "open" and case["overdue"] is False
    assert case["from"] is None and case["created_by"] == "api-key:dpo integration"

    detail = (await client.get(f"/api/v1/access-requests/{case['id']}")).json()
    assert [r["reference"] for r in detail["recordings"]] == [call.ref]
    assert detail["recordings"][0]["numbers"] == [LANDLINE, "+36301234567"]
    assert detail["recordings"][0]["has_audio"] is True
    searched = await audit_rows(pool, "recording.search")
    assert [(r["details"]["by"], r["details"]["found"]) for r in searched] == [(["number"], 1)]

    early = problem(await client.post(f"/api/v1/access-requests/{case['id']}/delivered"), 422)
    assert early["detail"] == "nothing to deliver yet: export the copy first"

    exported = await client.post(f"/api/v1/access-requests/{case['id']}/export")
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/zip"
    assert exported.headers["cache-control"] == "no-store"
    assert exported.headers["content-disposition"].startswith('attachment; filename="access-request-')
    digest = hashlib.sha256(exported.content).digest()
    assert exported.headers["repr-digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as bundle:
        names = bundle.namelist()
        manifest = json.loads(bundle.read("manifest.json"))
        audio = [name for name in names if name.endswith(".flac")]
        assert len(audio) == 1 and bundle.read(audio[0]) == call.audio  # decrypted, as recorded
    assert manifest["access_request"] == case["id"] and "summary.html" in names

    shown = (await client.get(f"/api/v1/access-requests/{case['id']}")).json()
    assert shown["status"] == "exported" and shown["bundle_sha256"] == digest.hex()
    assert shown["recording_ids"] == [str(call.recording.id)]
    export_rows = await audit_rows(pool, "access_request.export")
    assert [(r["object_id"], r["details"]["sha256"]) for r in export_rows] == [(case["id"], digest.hex())]
    assert [r["object_id"] for r in await audit_rows(pool, "recording.export")] == [str(call.recording.id)]

    delivered = await client.post(
        f"/api/v1/access-requests/{case['id']}/delivered", json={"note": "handed over in person"}
    )
    assert delivered.status_code == 200 and delivered.json()["status"] == "delivered"
    assert delivered.json()["notes"] == "handed over in person"
    bundle_file = Path(
        await pool.fetchval("SELECT bundle_path FROM access_requests WHERE id = $1", UUID(case["id"]))
    )
    assert await asyncio.to_thread(bundle_file.exists)
    closed = await client.post(f"/api/v1/access-requests/{case['id']}/close", json={"note": "answered"})
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert not await asyncio.to_thread(bundle_file.exists)
    refused = problem(await client.post(f"/api/v1/access-requests/{case['id']}/export"), 422)
    assert refused["detail"] == "an access request that is closed cannot be exported"


async def test_the_list_shows_unanswered_cases_by_due_date_and_overdue_ones(
    as_key: AsKey, api_services: ApiServices, tenant: Tenant, clock: Clock
) -> None:
    client = await as_key(Role.DPO)  # a key, as a login session would not last the two weeks
    made = []
    for days_ago in (3, 20, 10):
        received = clock.current - timedelta(days=days_ago)
        made.append(
            await api_services.access.open(
                tenant.id, requester=REQUESTER, number="201", received_at=received, actor=OPERATOR
            )
        )
    await api_services.access.close(tenant.id, made[2].id, actor=OPERATOR)
    by_due = [str(made[1].id), str(made[0].id)]

    async def ids(params: dict[str, Any]) -> list[str]:
        seen: list[str] = []
        while True:
            page = (await client.get("/api/v1/access-requests", params=params)).json()
            seen += [item["id"] for item in page["items"]]
            if page["next_cursor"] is None:
                return seen
            params = {**params, "cursor": page["next_cursor"]}

    assert await ids({}) == await ids({"state": "open", "limit": 1}) == by_due
    assert await ids({"state": "overdue"}) == []
    assert await ids({"state": "all", "limit": 2}) == [str(made[0].id), str(made[2].id), str(made[1].id)]
    clock.advance(timedelta(days=15))  # the one received 20 days ago is due after 31 days
    assert await ids({"state": "overdue"}) == [str(made[1].id)]
    listed = (await client.get("/api/v1/access-requests")).json()["items"]
    assert [item["overdue"] for item in listed] == [True, False]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"requester": REQUESTER}, "give a phone number or a recording reference"),
        ({"requester": REQUESTER, "number": "nobody"}, "'nobody' is not a phone number"),
        (
            {"requester": REQUESTER, "reference": "XX-1"},
            "'XX-1' is not a recording reference (like HT-7K3M-Q9RX)",
        ),
        ({"requester": "  ", "number": "+3612345678"}, "the request is not valid: see errors"),
        ({"number": "+3612345678"}, "the request is not valid: see errors"),
        (
            {"requester": REQUESTER, "number": "+3612345678", "received_at": "2026-12-02T09:00:00Z"},
            "a request cannot be received in the future",
        ),
        (
            {
                "requester": REQUESTER,
                "number": "+3612345678",
                "from": "2026-12-01T00:00:00Z",
                "until": "2026-11-01T00:00:00Z",
            },
            "the time window ends before it starts",
        ),
        (
            {"requester": REQUESTER, "number": "+3612345678", "until": "2026-11-01T00:00:00"},
            "the request is not valid: see errors",
        ),
        (
            {"requester": REQUESTER, "number": "+3612345678", "reason": "why"},
            "the request is not valid: see errors",
        ),
    ],
)
async def test_a_case_that_cannot_be_opened_is_a_422_problem(
    body: dict[str, Any], says: str, as_user: AsUser, pool: asyncpg.Pool
) -> None:
    client = await as_user(Role.DPO)
    assert problem(await client.post("/api/v1/access-requests", json=body), 422)["detail"] == says
    assert await pool.fetchval("SELECT count(*) FROM access_requests") == 0


async def test_a_reference_case_finds_its_one_recording_in_any_case(
    as_user: AsUser, api_services: ApiServices, tenant: Tenant
) -> None:
    call = await record_call(api_services, tenant, seconds=1)
    await record_call(api_services, tenant, seconds=1, started_at=T0 + timedelta(hours=2))
    client = await as_user(Role.ADMIN)
    written = call.ref.lower().replace("-", " ")
    case = (
        await client.post("/api/v1/access-requests", json={"requester": REQUESTER, "reference": written})
    ).json()
    assert case["reference"] == call.ref and case["number"] is None
    found = (await client.get(f"/api/v1/access-requests/{case['id']}")).json()["recordings"]
    assert [r["id"] for r in found] == [str(call.recording.id)]


@pytest.mark.parametrize("endpoint", OBJECT_ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_another_tenants_case_is_404_like_a_missing_one_and_audited(
    endpoint: Endpoint,
    as_other_admin: AsOther,
    other_admin: Account,
    api_services: ApiServices,
    tenant: Tenant,
    pool: asyncpg.Pool,
) -> None:
    await record_call(api_services, tenant, seconds=1)
    ids = await case_targets(api_services, tenant)
    before = {case.id: case for case in await api_services.access.list(tenant.id, include_finished=True)}
    intruder = await as_other_admin()
    missing = uuid4()
    foreign = problem(await endpoint.request(intruder, ids), 404)
    absent = problem(await endpoint.request(intruder, {"case": missing, "exported": missing}), 404)
    assert same_problem(foreign, absent) and foreign["detail"] == "no such access request"
    target = ids["exported" if "{exported}" in endpoint.path else "case"]
    rows = await audit_rows(pool, "access_request.access_denied")
    assert [(r["actor"], r["tenant_id"], r["object_id"]) for r in rows] == [
        (other_admin.email, other_admin.tenant.id, str(target)),
        (other_admin.email, other_admin.tenant.id, str(missing)),
    ]
    after = {case.id: case for case in await api_services.access.list(tenant.id, include_finished=True)}
    assert after == before
    assert await audit_rows(pool, "recording.search") == []  # nothing of the owner's was looked at
    assert (await intruder.get("/api/v1/access-requests", params={"state": "all"})).json()["items"] == []
