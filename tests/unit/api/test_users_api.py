"""Users and API keys through the API: the permission matrix, tenant isolation, pagination, conflicts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from siprec_server.api import ApiServices
from storage.principal import ROLE_PERMISSIONS, Permission, Role

from .conftest import OPERATOR, Account, log_in

MakeClient = Callable[[], httpx.AsyncClient]
AsUser = Callable[[Role], Awaitable[httpx.AsyncClient]]
AsKey = Callable[[Role], Awaitable[httpx.AsyncClient]]

# Every permission-guarded endpoint of users_routes: (method, path, body, success status).
ENDPOINTS = [
    ("GET", "/api/v1/users", None, 200),
    ("POST", "/api/v1/users", {"email": "uj@acme.example", "role": "viewer"}, 201),
    ("GET", "/api/v1/users/{user}", None, 200),
    ("PATCH", "/api/v1/users/{user}", {"role": "auditor"}, 200),
    ("POST", "/api/v1/users/{user}/disable", None, 200),
    ("GET", "/api/v1/api-keys", None, 200),
    ("POST", "/api/v1/api-keys", {"name": "CRM", "role": "viewer"}, 201),
    ("GET", "/api/v1/api-keys/{key}", None, 200),
    ("DELETE", "/api/v1/api-keys/{key}", None, 200),
]
OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e[1]]


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    return body


async def a_target(api: ApiServices, account: Account) -> tuple[UUID, UUID]:
    """A user and a key of the account's tenant for the per-object endpoints to act on."""
    user, _ = await api.users.create(
        account.tenant.id, f"target-{uuid4().hex[:8]}@example.hu", Role.VIEWER, OPERATOR
    )
    key, _ = await api.api_keys.create(account.tenant.id, f"target {uuid4().hex[:8]}", Role.VIEWER, OPERATOR)
    return user.id, key.id


@pytest.mark.parametrize("credential", ["session", "api_key"])
@pytest.mark.parametrize("role", list(Role))
async def test_only_the_users_permission_reaches_users_and_keys(
    role: Role,
    credential: str,
    as_user: AsUser,
    as_key: AsKey,
    api_services: ApiServices,
    accounts: dict[Role, Account],
) -> None:
    client = await (as_user(role) if credential == "session" else as_key(role))
    allowed = Permission.USERS in ROLE_PERMISSIONS[role]
    assert allowed is (role is Role.ADMIN)
    for method, path, body, success in ENDPOINTS:
        user_id, key_id = await a_target(api_services, accounts[Role.ADMIN])
        if body is not None and "email" in body:
            body = {**body, "email": f"{uuid4().hex[:8]}@acme.example"}
        if body is not None and "name" in body:
            body = {**body, "name": f"CRM {uuid4().hex[:8]}"}
        response = await client.request(method, path.format(user=user_id, key=key_id), json=body)
        if allowed:
            assert response.status_code == success, (method, path, response.text)
        else:
            found = problem(response, 403)
            assert found["detail"] == f"the role {role.value} may not do this (users)", (method, path)
            assert (await api_services.users.get(accounts[Role.ADMIN].tenant.id, user_id)).role is Role.VIEWER
            assert (await api_services.api_keys.get(accounts[Role.ADMIN].tenant.id, key_id)).active


async def test_without_credentials_every_endpoint_is_401(make_client: MakeClient) -> None:
    client = make_client()
    for method, path, body, _ in ENDPOINTS:
        response = await client.request(method, path.format(user=uuid4(), key=uuid4()), json=body)
        found = problem(response, 401)
        assert response.headers["www-authenticate"] == 'Bearer realm="hangtar"'
        assert found["title"] == "Unauthorized"
    problem(await client.get("/api/v1/me"), 401)
    client.headers["Authorization"] = "Bearer htk_0123abcd_" + "A" * 43
    problem(await client.get("/api/v1/users"), 401)
    client.headers["Authorization"] = "Basic YWRtaW46YWRtaW4="
    problem(await client.get("/api/v1/users"), 401)


@pytest.mark.parametrize(("method", "path", "body", "success"), OBJECT_ENDPOINTS)
async def test_another_tenants_user_or_key_is_404_like_a_missing_one_and_audited(
    method: str,
    path: str,
    body: object,
    success: int,
    as_other_admin: Callable[[], Awaitable[httpx.AsyncClient]],
    api_services: ApiServices,
    accounts: dict[Role, Account],
    pool: asyncpg.Pool,
    other_admin: Account,
) -> None:
    user_id, key_id = await a_target(api_services, accounts[Role.ADMIN])
    intruder = await as_other_admin()
    theirs = await intruder.request(method, path.format(user=user_id, key=key_id), json=body)
    missing_user, missing_key = uuid4(), uuid4()
    missing = await intruder.request(method, path.format(user=missing_user, key=missing_key), json=body)
    found, absent = problem(theirs, 404), problem(missing, 404)
    assert {k: v for k, v in found.items() if k != "instance"} == {
        k: v for k, v in absent.items() if k != "instance"
    }
    assert found["detail"] in ("no such user", "no such API key")
    user = await api_services.users.get(accounts[Role.ADMIN].tenant.id, user_id)
    key = await api_services.api_keys.get(accounts[Role.ADMIN].tenant.id, key_id)
    assert user.role is Role.VIEWER and user.active and key.active
    kind = "user" if "/users/" in path else "api_key"
    denied = await pool.fetch(
        "SELECT * FROM audit_log WHERE action = $1 ORDER BY seq", f"{kind}.access_denied"
    )
    target = user_id if kind == "user" else key_id
    assert [(r["actor"], r["tenant_id"], r["object_id"], r["details"]) for r in denied] == [
        (other_admin.email, other_admin.tenant.id, str(target), {"method": method}),
        (
            other_admin.email,
            other_admin.tenant.id,
            str(missing_user if kind == "user" else missing_key),
            {"method": method},
        ),
    ]
    assert denied[0]["origin"] == "203.0.113.7"


async def test_lists_show_only_the_callers_tenant(
    as_user: AsUser, as_other_admin: Callable[[], Awaitable[httpx.AsyncClient]], api_keys: dict[Role, str]
) -> None:
    ours = await as_user(Role.ADMIN)
    theirs = await as_other_admin()
    assert {u["email"] for u in (await ours.get("/api/v1/users")).json()["items"]} == {
        f"{role.value}@acme.example" for role in Role
    }
    assert [u["email"] for u in (await theirs.get("/api/v1/users")).json()["items"]] == [
        "admin@globex.example"
    ]
    assert len((await ours.get("/api/v1/api-keys")).json()["items"]) == len(api_keys)
    assert (await theirs.get("/api/v1/api-keys")).json() == {"items": [], "next_cursor": None}


async def test_users_are_created_changed_and_disabled_and_the_last_admin_kept(
    as_user: AsUser, make_client: MakeClient, accounts: dict[Role, Account], pool: asyncpg.Pool
) -> None:
    admin = await as_user(Role.ADMIN)
    response = await admin.post("/api/v1/users", json={"email": "Szabo.Gergo@Acme.Example", "role": "dpo"})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    user = created["user"]
    assert (user["email"], user["role"], user["must_change_password"], user["active"]) == (
        "szabo.gergo@acme.example",
        "dpo",
        True,
        True,
    )
    gergo = make_client()
    await log_in(gergo, "szabo.gergo@acme.example", created["one_time_password"])
    problem(
        await admin.post("/api/v1/users", json={"email": "SZABO.gergo@acme.example", "role": "viewer"}), 409
    )
    changed = await admin.patch(f"/api/v1/users/{user['id']}", json={"role": "auditor"})
    assert changed.json()["role"] == "auditor"
    assert (await gergo.get("/api/v1/me")).json()["role"] == "auditor"
    disabled = (await admin.post(f"/api/v1/users/{user['id']}/disable")).json()
    assert disabled["active"] is False and disabled["disabled_at"] == "2026-12-01T09:00:00Z"
    problem(await gergo.get("/api/v1/me"), 401)
    me = accounts[Role.ADMIN].user.id
    last = problem(await admin.patch(f"/api/v1/users/{me}", json={"role": "viewer"}), 409)
    assert last["detail"] == "the tenant's last active admin cannot be demoted"
    problem(await admin.post(f"/api/v1/users/{me}/disable"), 409)
    actions = [
        r["action"]
        for r in await pool.fetch("SELECT action FROM audit_log WHERE actor = 'admin@acme.example'")
    ]
    assert actions.count("user.create") == 1 and "user.role_change" in actions and "user.disable" in actions


async def test_api_keys_are_shown_once_and_work_until_revoked(
    as_user: AsUser, make_client: MakeClient
) -> None:
    admin = await as_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/api-keys", json={"name": "  CRM   integráció ", "role": "supervisor"}
    )
    assert response.status_code == 201 and response.headers["cache-control"] == "no-store"
    created = response.json()
    secret, key = created["secret"], created["api_key"]
    assert secret.startswith(f"htk_{key['prefix']}_")
    assert (key["name"], key["role"], key["created_by"], key["active"]) == (
        "CRM integráció",
        "supervisor",
        "admin@acme.example",
        True,
    )
    listed = (await admin.get("/api/v1/api-keys")).text
    assert secret.split("_", 2)[2] not in listed and key["prefix"] in listed
    problem(await admin.post("/api/v1/api-keys", json={"name": "CRM integráció", "role": "viewer"}), 409)
    robot = make_client()
    robot.headers["Authorization"] = f"Bearer {secret}"
    me = (await robot.get("/api/v1/me")).json()
    assert (me["kind"], me["role"], me["api_key_id"]) == ("api_key", "supervisor", key["id"])
    assert (await admin.get(f"/api/v1/api-keys/{key['id']}")).json()["last_used_at"] == "2026-12-01T09:00:00Z"
    revoked = (await admin.delete(f"/api/v1/api-keys/{key['id']}")).json()
    assert revoked["active"] is False and revoked["revoked_at"] == "2026-12-01T09:00:00Z"
    problem(await robot.get("/api/v1/me"), 401)
    assert (await admin.delete(f"/api/v1/api-keys/{key['id']}")).json() == revoked


async def test_lists_page_with_a_cursor_every_item_once(
    as_user: AsUser, api_services: ApiServices, accounts: dict[Role, Account]
) -> None:
    admin = await as_user(Role.ADMIN)
    tenant = accounts[Role.ADMIN].tenant
    for n in range(6):
        await api_services.users.create(tenant.id, f"user{n:02}@acme.example", Role.VIEWER, OPERATOR)
        await api_services.api_keys.create(
            tenant.id, f"key {n}", Role.VIEWER, OPERATOR
        )  # the same created_at
    for path, total, field in (("/api/v1/users", 11, "email"), ("/api/v1/api-keys", 6, "id")):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
            page = (await admin.get(path, params=params)).json()
            seen += [item[field] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == (total + 3) // 4
        assert len(seen) == len(set(seen)) == total
    emails = [u["email"] for u in (await admin.get("/api/v1/users", params={"limit": 200})).json()["items"]]
    assert emails == sorted(emails)


@pytest.mark.parametrize("cursor", ["garbage!", "eyJ4IjoxfQ", "bm90IGpzb24", "e30", "W10"])
async def test_a_malformed_cursor_is_422(as_user: AsUser, cursor: str) -> None:
    admin = await as_user(Role.ADMIN)
    for path in ("/api/v1/users", "/api/v1/api-keys"):
        found = problem(await admin.get(path, params={"cursor": cursor}), 422)
        assert found["errors"] == [
            {"field": "query.cursor", "message": "not a cursor of this list", "type": "value_error"}
        ]
