"""Logging in and out, cookies, CSRF, expiry, one-time passwords and login rate limiting, through the API."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated

import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from siprec_server.api import ApiServices, build_api, require
from storage.principal import Permission, Principal, Role

from .conftest import BASE_URL, CLIENT_ADDRESS, Account, Clock, log_in

MakeClient = Callable[[], httpx.AsyncClient]
AsUser = Callable[[Role], Awaitable[httpx.AsyncClient]]
AsKey = Callable[[Role], Awaitable[httpx.AsyncClient]]


def cookie_attributes(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each Set-Cookie of the response: name → {attribute (lower-case): value}, "value" the cookie's own."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        name_value, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = name_value.partition("=")
        parsed = {"value": value}
        for attribute in attributes:
            key, _, attr_value = attribute.partition("=")
            parsed[key.lower()] = attr_value
        found[name] = parsed
    return found


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


async def test_login_sets_the_session_and_csrf_cookies(
    make_client: MakeClient, accounts: dict[Role, Account]
) -> None:
    client = make_client()
    eva = accounts[Role.SUPERVISOR]
    response = await client.post(
        "/api/v1/session", json={"email": "Supervisor@Acme.Example", "password": eva.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    cookies = cookie_attributes(response)
    session, csrf = cookies["hangtar_session"], cookies["hangtar_csrf"]
    assert set(session) == {"value", "httponly", "secure", "samesite", "path"}
    assert session["samesite"].lower() == "strict" and session["path"] == "/"
    assert set(csrf) == {"value", "secure", "samesite", "path"}  # readable by the portal's script
    assert csrf["samesite"].lower() == "strict" and csrf["path"] == "/"
    assert body["csrf_token"] == csrf["value"] and len(session["value"]) >= 43
    assert response.headers["cache-control"] == "no-store"
    assert body["me"]["name"] == "supervisor@acme.example"
    assert body["me"]["role"] == "supervisor" and body["me"]["kind"] == "user"
    assert body["me"]["permissions"] == ["listen", "retention", "view"]
    assert body["me"]["tenant"]["slug"] == "acme"
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["user_id"] == str(eva.user.id)


async def test_plain_http_development_cookies_are_not_secure(
    api_services: ApiServices, accounts: dict[Role, Account]
) -> None:
    app = build_api(dataclasses.replace(api_services, secure_cookies=False))
    transport = httpx.ASGITransport(app=app, client=CLIENT_ADDRESS)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8080") as client:
        viewer = accounts[Role.VIEWER]
        response = await client.post(
            "/api/v1/session", json={"email": viewer.email, "password": viewer.password}
        )
        cookies = cookie_attributes(response)
        assert "secure" not in cookies["hangtar_session"] and "secure" not in cookies["hangtar_csrf"]
        assert "httponly" in cookies["hangtar_session"]
        assert (await client.get("/api/v1/me")).status_code == 200


async def test_bad_credentials_get_one_generic_answer(
    make_client: MakeClient, accounts: dict[Role, Account], as_user: AsUser
) -> None:
    admin = await as_user(Role.ADMIN)
    viewer = accounts[Role.VIEWER]
    assert (await admin.post(f"/api/v1/users/{viewer.user.id}/disable")).status_code == 200
    client = make_client()
    answers = []
    for email, password in (
        (accounts[Role.DPO].email, "not the password at all"),
        ("nobody@acme.example", "whatever it is"),
        (viewer.email, viewer.password),  # disabled
    ):
        response = await client.post("/api/v1/session", json={"email": email, "password": password})
        body = problem(response, 401)
        assert "hangtar_session" not in response.headers.get("set-cookie", "")
        answers.append((body["title"], body["detail"]))
    assert answers == [("Unauthorized", "wrong e-mail or password")] * 3


async def test_logout_ends_the_session_on_the_server(
    make_client: MakeClient, accounts: dict[Role, Account]
) -> None:
    client = make_client()
    csrf = await log_in(client, accounts[Role.DPO].email, accounts[Role.DPO].password)
    token = client.cookies["hangtar_session"]
    response = await client.delete("/api/v1/session")
    assert response.status_code == 204
    cleared = cookie_attributes(response)
    assert cleared["hangtar_session"]["max-age"] == "0" and cleared["hangtar_csrf"]["max-age"] == "0"
    replay = make_client()  # someone who kept a copy of the old cookie
    replay.cookies.set("hangtar_session", token, domain="hangtar.test")
    replay.headers["X-CSRF-Token"] = csrf
    assert problem(await replay.get("/api/v1/me"), 401)["detail"] == "log in first, or send an API key"
    assert (await replay.delete("/api/v1/session")).status_code == 204  # nothing left to end


async def test_a_session_ends_when_idle_and_at_its_absolute_expiry(as_user: AsUser, clock: Clock) -> None:
    idle = await as_user(Role.VIEWER)
    busy = await as_user(Role.AUDITOR)
    for step in range(35):  # a request every 20 minutes keeps a session alive ...
        clock.advance(timedelta(minutes=20))
        assert (await busy.get("/api/v1/me")).status_code == 200
        if step == 1:  # ... 40 minutes without one ends it
            assert (await idle.get("/api/v1/me")).status_code == 401
    clock.advance(timedelta(minutes=20))  # 12 hours after the login, however busy
    problem(await busy.get("/api/v1/me"), 401)


async def test_a_disabled_users_session_and_a_revoked_key_stop_at_once(
    as_user: AsUser, as_key: AsKey, accounts: dict[Role, Account]
) -> None:
    admin = await as_user(Role.ADMIN)
    dpo = await as_user(Role.DPO)
    assert (await dpo.get("/api/v1/me")).status_code == 200
    assert (await admin.post(f"/api/v1/users/{accounts[Role.DPO].user.id}/disable")).status_code == 200
    problem(await dpo.get("/api/v1/me"), 401)

    robot = await as_key(Role.ADMIN)
    me = (await robot.get("/api/v1/me")).json()
    assert me["kind"] == "api_key" and me["name"] == "api-key:admin integration"
    assert (await admin.delete(f"/api/v1/api-keys/{me['api_key_id']}")).status_code == 200
    body = problem(await robot.get("/api/v1/users"), 401)
    assert body["detail"] == "the API key is not valid"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/users", {"email": "new@acme.example", "role": "viewer"}),
        ("PATCH", "/api/v1/users/{viewer}", {"role": "auditor"}),
        ("POST", "/api/v1/users/{viewer}/disable", None),
        ("POST", "/api/v1/api-keys", {"name": "CRM", "role": "viewer"}),
        ("DELETE", "/api/v1/api-keys/{key}", None),
        ("DELETE", "/api/v1/session", None),
        ("POST", "/api/v1/me/password", {"current_password": "x" * 12, "new_password": "y" * 12}),
    ],
)
async def test_unsafe_methods_on_a_cookie_session_need_the_csrf_token(
    as_user: AsUser,
    as_key: AsKey,
    accounts: dict[Role, Account],
    method: str,
    path: str,
    body: object,
) -> None:
    admin = await as_user(Role.ADMIN)
    key = (await (await as_key(Role.VIEWER)).get("/api/v1/me")).json()["api_key_id"]
    url = path.format(viewer=accounts[Role.VIEWER].user.id, key=key)
    csrf = admin.headers.pop("X-CSRF-Token")
    for header in ({}, {"X-CSRF-Token": csrf[:-2]}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": csrf + "x"}):
        response = await admin.request(method, url, json=body, headers=header)
        found = problem(response, 403)
        assert found["type"] == "urn:hangtar:problem:csrf"
    assert (await admin.get("/api/v1/me")).status_code == 200  # safe methods need no token
    # Nothing happened: the viewer is untouched and the session still works.
    assert (await admin.get(f"/api/v1/users/{accounts[Role.VIEWER].user.id}")).json()["role"] == "viewer"
    response = await admin.request(method, url, json=body, headers={"X-CSRF-Token": csrf})
    assert response.status_code not in (401, 403), response.text


async def test_an_api_key_needs_no_csrf_token(as_key: AsKey) -> None:
    robot = await as_key(Role.ADMIN)
    response = await robot.post("/api/v1/users", json={"email": "new@acme.example", "role": "viewer"})
    assert response.status_code == 201, response.text


async def test_a_one_time_password_allows_only_changing_it(
    as_user: AsUser, make_client: MakeClient, pool: asyncpg.Pool
) -> None:
    admin = await as_user(Role.ADMIN)
    created = (
        await admin.post("/api/v1/users", json={"email": "Uj.Kolléga@Acme.Example", "role": "admin"})
    ).json()
    one_time = created["one_time_password"]
    assert created["user"]["must_change_password"] is True
    newcomer = make_client()
    await log_in(newcomer, "uj.kolléga@acme.example", one_time)
    me = (await newcomer.get("/api/v1/me")).json()
    assert me["must_change_password"] is True
    for method, path in (("GET", "/api/v1/users"), ("GET", "/api/v1/api-keys"), ("POST", "/api/v1/api-keys")):
        body = problem(await newcomer.request(method, path, json={"name": "x", "role": "viewer"}), 403)
        assert body["type"] == "urn:hangtar:problem:password-change-required"
        assert str(body["detail"]).startswith("password change required")
    weak = await newcomer.post(
        "/api/v1/me/password", json={"current_password": one_time, "new_password": "rövid"}
    )
    assert problem(weak, 422)["detail"] == "a password needs at least 12 characters"
    wrong = await newcomer.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": "Tavaszi szél vizet áraszt"},
    )
    assert problem(wrong, 422)["detail"] == "the current password is not correct"
    changed = await newcomer.post(
        "/api/v1/me/password",
        json={"current_password": one_time, "new_password": "Tavaszi szél vizet áraszt"},
    )
    assert changed.status_code == 200 and changed.json()["must_change_password"] is False
    assert (await newcomer.get("/api/v1/users")).status_code == 200
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE email = 'uj.kolléga@acme.example'")
    assert stored.startswith("$argon2id$") and "Tavaszi" not in stored
    again = make_client()
    await log_in(again, "uj.kolléga@acme.example", "Tavaszi szél vizet áraszt")
    assert (await again.get("/api/v1/me")).json()["must_change_password"] is False


async def test_a_password_change_ends_the_users_other_sessions(
    make_client: MakeClient, accounts: dict[Role, Account]
) -> None:
    dpo = accounts[Role.DPO]
    laptop, phone = make_client(), make_client()
    await log_in(laptop, dpo.email, dpo.password)
    await log_in(phone, dpo.email, dpo.password)
    response = await laptop.post(
        "/api/v1/me/password",
        json={"current_password": dpo.password, "new_password": "Egy új, hosszú jelszó"},
    )
    assert response.status_code == 200, response.text
    assert (await laptop.get("/api/v1/me")).status_code == 200
    problem(await phone.get("/api/v1/me"), 401)


async def test_an_api_key_has_no_password_to_change(as_key: AsKey) -> None:
    robot = await as_key(Role.ADMIN)
    response = await robot.post(
        "/api/v1/me/password", json={"current_password": "x" * 12, "new_password": "y" * 13}
    )
    assert problem(response, 403)["detail"] == "an API key has no password"


async def test_repeated_failures_for_one_e_mail_lock_it_even_with_the_right_password(
    make_client: MakeClient, accounts: dict[Role, Account], clock: Clock
) -> None:
    client = make_client()
    eva = accounts[Role.SUPERVISOR]
    for _ in range(5):
        response = await client.post("/api/v1/session", json={"email": eva.email, "password": "Jelszo123456"})
        problem(response, 401)
        clock.advance(timedelta(seconds=30))
    locked = await client.post("/api/v1/session", json={"email": eva.email, "password": eva.password})
    body = problem(locked, 429)
    # Locked for 15 minutes from the fifth failure, 30 seconds ago.
    assert locked.headers["retry-after"] == str(14 * 60 + 30)
    assert body["type"] == "urn:hangtar:problem:login-throttled"
    assert "hangtar_session" not in locked.headers.get("set-cookie", "")
    # Another account from the same address is not affected.
    dpo = accounts[Role.DPO]
    assert (
        await client.post("/api/v1/session", json={"email": dpo.email, "password": dpo.password})
    ).status_code == 200
    clock.advance(timedelta(minutes=14, seconds=29))
    problem(await client.post("/api/v1/session", json={"email": eva.email, "password": eva.password}), 429)
    clock.advance(timedelta(seconds=1))
    assert (
        await client.post("/api/v1/session", json={"email": eva.email, "password": eva.password})
    ).status_code == 200


async def test_repeated_failures_from_one_address_lock_it(
    app: object, make_client: MakeClient, accounts: dict[Role, Account], clock: Clock
) -> None:
    attacker = make_client()
    for n in range(20):
        response = await attacker.post(
            "/api/v1/session", json={"email": f"guess{n}@acme.example", "password": "Jelszo123456"}
        )
        problem(response, 401)
    viewer = accounts[Role.VIEWER]
    locked = await attacker.post("/api/v1/session", json={"email": viewer.email, "password": viewer.password})
    assert problem(locked, 429)["status"] == 429 and int(locked.headers["retry-after"]) == 15 * 60
    transport = httpx.ASGITransport(app=app, client=("198.51.100.80", 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as elsewhere:
        response = await elsewhere.post(
            "/api/v1/session", json={"email": viewer.email, "password": viewer.password}
        )
        assert response.status_code == 200
    clock.advance(timedelta(minutes=15))
    response = await attacker.post(
        "/api/v1/session", json={"email": viewer.email, "password": viewer.password}
    )
    assert response.status_code == 200


async def test_no_secret_reaches_the_logs_or_the_audit_trail(
    make_client: MakeClient,
    as_user: AsUser,
    accounts: dict[Role, Account],
    api_keys: dict[Role, str],
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [account.password for account in accounts.values()] + list(api_keys.values())
    admin = await as_user(Role.ADMIN)
    secrets += [admin.cookies["hangtar_session"], admin.headers["X-CSRF-Token"]]
    created = (await admin.post("/api/v1/users", json={"email": "uj@acme.example", "role": "viewer"})).json()
    secrets.append(created["one_time_password"])
    key = (await admin.post("/api/v1/api-keys", json={"name": "CRM", "role": "viewer"})).json()
    secrets.append(key["secret"])
    newcomer = make_client()
    await log_in(newcomer, "uj@acme.example", created["one_time_password"])
    secrets += [newcomer.cookies["hangtar_session"], newcomer.headers["X-CSRF-Token"]]
    await newcomer.post(
        "/api/v1/me/password",
        json={"current_password": created["one_time_password"], "new_password": "Tavaszi szél vizet áraszt"},
    )
    secrets.append("Tavaszi szél vizet áraszt")
    anonymous = make_client()
    for password in ("Rossz jelszó egy", "Rossz jelszó kettő"):
        await anonymous.post("/api/v1/session", json={"email": "uj@acme.example", "password": password})
        secrets.append(password)
    await anonymous.post("/api/v1/session", json={"email": "Tavaszi szél a mezőben", "password": "x"})
    secrets.append("Tavaszi szél a mezőben")  # a password typed into the e-mail field
    robot = make_client()
    robot.headers["Authorization"] = f"Bearer {key['secret']}"
    await robot.get("/api/v1/me")
    await admin.delete(f"/api/v1/api-keys/{key['api_key']['id']}")
    await robot.get("/api/v1/me")
    await admin.delete("/api/v1/session")

    rows = [dict(row) for row in await pool.fetch("SELECT * FROM audit_log ORDER BY seq")]
    actions = {row["action"] for row in rows}
    assert {
        "user.create",
        "api_key.create",
        "api_key.revoke",
        "session.login",
        "session.login_failed",
    } <= actions
    assert {"user.password_change", "session.logout"} <= actions
    trail = json.dumps([{k: str(v) for k, v in row.items()} for row in rows], ensure_ascii=False)
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for secret in secrets:
        assert secret not in trail
        assert secret not in logged


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_every_unsafe_method_behind_require_is_csrf_checked(
    app: FastAPI, as_user: AsUser, as_key: AsKey, method: str
) -> None:
    async def touch(principal: Annotated[Principal, Depends(require(Permission.VIEW))]) -> dict[str, str]:
        return {"name": principal.name}

    app.add_api_route("/api/v1/test-touch", touch, methods=["GET", method])
    viewer = await as_user(Role.VIEWER)
    csrf = viewer.headers.pop("X-CSRF-Token")
    assert (await viewer.get("/api/v1/test-touch")).json() == {"name": "viewer@acme.example"}
    assert problem(await viewer.request(method, "/api/v1/test-touch"), 403)["title"] == "CSRF check failed"
    response = await viewer.request(method, "/api/v1/test-touch", headers={"X-CSRF-Token": csrf})
    assert response.json() == {"name": "viewer@acme.example"}
    robot = await as_key(Role.VIEWER)
    assert (await robot.request(method, "/api/v1/test-touch")).json() == {
        "name": "api-key:viewer integration"
    }
