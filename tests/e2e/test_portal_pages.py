"""The portal's pages through the app the server runs (the API with the portal mounted), on the real
catalogue, without a browser: which role reaches which page and form, another tenant's objects, CSRF, the
one-time password gate, the security headers, the list's paging, and consent withdrawal.

Recordings are real sealed FLAC files (tests.unit.api.test_recordings_api.record_call); the fixtures are
:mod:`tests.e2e.portal_app`'s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from siprec_server.api import ApiServices
from siprec_server.portal.web import CSP
from storage.principal import ROLE_PERMISSIONS, Permission, Role
from storage.tenant_models import Tenant
from tests.unit.api.test_recordings_api import Call, record_call

from .portal_app import OPERATOR, PASSWORD, Reader, account

PAGES: list[tuple[str, Permission]] = [
    ("/recordings", Permission.VIEW),
    ("/recordings/{ref}", Permission.VIEW),
    ("/recordings/{id}/waveform", Permission.LISTEN),
    ("/access-requests", Permission.ACCESS_REQUEST),
    ("/holds", Permission.HOLD),
    ("/consent", Permission.ERASE),
    ("/settings", Permission.SETTINGS),
    ("/audit", Permission.AUDIT),
]


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_reaches_the_pages_of_its_permissions(
    services: ApiServices, acme: Tenant, reader: Any, role: Role
) -> None:
    call = await record_call(services, acme, seconds=3.0)
    client: Reader = await reader(services, acme, role)
    for template, permission in PAGES:
        path = template.format(ref=call.ref, id=call.recording.id)
        response = await client.http.get(path)
        expected = 200 if permission in ROLE_PERMISSIONS[role] else 403
        assert response.status_code == expected, (role, path, response.text[:300])
        if expected == 403:
            assert "Your role does not give access to this page." in response.text
    forms = [
        (f"/recordings/{call.ref}/retention", {"retention_class": "contract_evidence"}, Permission.RETENTION),
        (f"/recordings/{call.ref}/holds", {"reason": "complaint 2026/118"}, Permission.HOLD),
        ("/holds", {"number": "06 1 234 5678", "reason": "complaint 2026/118"}, Permission.HOLD),
        ("/settings/numbers", {"kind": "extension", "value": "201"}, Permission.SETTINGS),
    ]
    for path, fields, permission in forms:
        response = await client.post(path, **fields)
        assert response.status_code == (303 if permission in ROLE_PERMISSIONS[role] else 403), (role, path)


async def test_another_tenants_objects_are_not_found_and_the_attempt_is_audited(
    services: ApiServices, acme: Tenant, globex: Tenant, reader: Any
) -> None:
    theirs = await record_call(services, globex, seconds=2.0)
    case = await services.access.open(globex.id, requester="Nagy Anna", number="+3612345678", actor=OPERATOR)
    their_user, _ = await account(services, globex, Role.VIEWER)
    found_user = await services.users.find(globex.id, their_user)
    client: Reader = await reader(services, acme, Role.ADMIN)
    refused = [
        await client.http.get(f"/recordings/{theirs.ref}"),
        await client.http.get(f"/recordings/{theirs.recording.id}"),
        await client.http.get(f"/recordings/{theirs.recording.id}/waveform"),
        await client.post(f"/recordings/{theirs.ref}/retention", retention_class="contract_evidence"),
        await client.post(f"/recordings/{theirs.ref}/holds", reason="litigation"),
        await client.http.get(f"/access-requests/{case.id}"),
        await client.http.get(f"/access-requests/{case.id}/bundle"),
        await client.post(f"/access-requests/{case.id}/export"),
        await client.post(f"/settings/users/{found_user.id}/disable"),
        await client.http.get("/recordings/not-a-reference"),
        await client.http.get("/access-requests/not-a-uuid"),
    ]
    for response in refused:
        assert response.status_code == 404, (response.request.url, response.text[:300])
        assert "No such page or item." in response.text
    denied = await services.pool.fetch(
        "SELECT action, object_id FROM audit_log WHERE action LIKE '%.access_denied' AND tenant_id = $1",
        acme.id,
    )
    assert {(row["action"], row["object_id"]) for row in denied} >= {
        ("recording.access_denied", theirs.ref),
        ("recording.access_denied", str(theirs.recording.id)),
        ("access_request.access_denied", str(case.id)),
        ("user.access_denied", str(found_user.id)),
    }
    untouched = await services.holds.list(globex.id)
    assert untouched == [] and (await services.access.show(globex.id, case.id)).exported_at is None
    assert (await services.users.get(globex.id, found_user.id)).active


async def test_a_one_time_password_must_be_replaced_before_any_page(
    services: ApiServices, acme: Tenant, app: FastAPI
) -> None:
    email, one_time = await account(services, acme, Role.ADMIN, change=False)
    client = Reader(app)
    try:
        response = await client.log_in(email, one_time)
        assert (response.status_code, response.headers["location"]) == (303, "/password")
        for path in ("/recordings", "/settings", "/audit"):
            gate = await client.http.get(path)
            assert (gate.status_code, gate.headers["location"]) == (303, "/password"), path
        too_short = await client.post("/password", current=one_time, new="short", repeat="short")
        assert too_short.status_code == 422 and "at least 12 characters" in too_short.text
        wrong = await client.post("/password", current="not it at all", new=PASSWORD, repeat=PASSWORD)
        assert wrong.status_code == 422 and "The current password is not correct." in wrong.text
        done = await client.post("/password", current=one_time, new=PASSWORD, repeat=PASSWORD)
        assert (done.status_code, done.headers["location"]) == (303, "/recordings?notice=password.changed")
        assert (await client.http.get("/recordings")).status_code == 200
    finally:
        await client.http.aclose()


async def test_login_refusals_and_the_login_forms_own_token(
    services: ApiServices, acme: Tenant, app: FastAPI
) -> None:
    email, password = await account(services, acme, Role.VIEWER)
    client = Reader(app)
    try:
        wrong = await client.log_in(email, "not the password")
        assert wrong.status_code == 401 and "Wrong e-mail address or password." in wrong.text
        unknown = await client.log_in("nobody@acme.example", password)
        assert unknown.status_code == 401 and "Wrong e-mail address or password." in unknown.text
        forged = await client.http.post(
            "/login", data={"email": email, "password": password, "login_token": "made-up"}
        )
        assert forged.status_code == 400 and "hangtar_session" not in forged.headers.get("set-cookie", "")
        for _ in range(4):  # five failures for the e-mail within the window lock it (storage.login_limit)
            await client.log_in(email, "still not the password")
        throttled = await client.log_in(email, password)
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
        failures = await services.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'session.login_failed'"
        )
        assert failures >= 5
    finally:
        await client.http.aclose()


async def test_pages_carry_the_security_headers_and_no_inline_code(
    services: ApiServices, acme: Tenant, reader: Any
) -> None:
    call = await record_call(services, acme, seconds=2.0)
    client: Reader = await reader(services, acme, Role.ADMIN)
    for path in (
        "/recordings",
        f"/recordings/{call.ref}",
        "/access-requests",
        "/holds",
        "/settings",
        "/audit",
        "/consent",
    ):
        response = await client.http.get(path)
        assert response.status_code == 200
        assert response.headers["content-security-policy"] == CSP
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        html = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path  # every script is a file
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html), path  # no inline style, no handlers
        for form in re.findall(r"<form[^>]*method=\"post\"[^>]*>.*?</form>", html, flags=re.S):
            assert f'name="csrf_token" value="{client.csrf}"' in form, (path, form[:200])
    static = await client.http.get("/static/portal.js")
    assert static.status_code == 200 and static.headers["content-type"].startswith("text/javascript")
    for other in ("/static/web.py", "/static/%2e%2e%2fweb.py", "/static/templates"):
        assert (await client.http.get(other)).status_code == 404, other  # only the portal's three files
    spec = (await client.http.get("/api/v1/openapi.json")).json()
    assert not any(path.startswith(("/recordings", "/login", "/static")) for path in spec["paths"])


async def test_the_list_pages_back_with_the_older_link(
    services: ApiServices, acme: Tenant, reader: Any
) -> None:
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    calls: list[Call] = [
        await record_call(services, acme, started_at=start + timedelta(minutes=n), seconds=1.0)
        for n in range(53)
    ]
    client: Reader = await reader(services, acme, Role.VIEWER)
    first = await client.http.get("/recordings", params={"q": "06 1 234 5678"})
    shown = re.findall(r'class="ref" href="/recordings/(HT-[^"]+)"', first.text)
    assert shown == [call.ref for call in reversed(calls)][:50]
    older = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert older is not None
    second = await client.http.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r'class="ref" href="/recordings/(HT-[^"]+)"', second.text) == [
        c.ref for c in calls[2::-1]
    ]
    assert 'rel="next"' not in second.text
    broken = await client.http.get("/recordings", params={"cursor": "not-a-cursor"})
    assert broken.status_code == 422 and "start again from the first page" in broken.text
    bad_day = await client.http.get("/recordings", params={"since": "2026-13-01"})
    assert bad_day.status_code == 422 and "YYYY-MM-DD" in bad_day.text


async def test_consent_withdrawal_erases_only_consent_based_calls(
    services: ApiServices, acme: Tenant, reader: Any
) -> None:
    consented = await record_call(services, acme, basis="consent", class_code="consent", seconds=1.0)
    kept = await record_call(services, acme, seconds=1.0)
    client: Reader = await reader(services, acme, Role.DPO)
    unconfirmed = await client.post("/consent", number="06 1 234 5678")
    assert unconfirmed.status_code == 422 and "Confirm that the erasure is final." in unconfirmed.text
    done = await client.post("/consent", number="06 1 234 5678", confirm="yes")
    assert done.status_code == 200
    assert "Consent withdrawn for +3612345678." in done.text and consented.ref in done.text
    assert await services.catalogue.get(consented.recording.id) is None
    assert await services.catalogue.get(kept.recording.id) is not None
    rows = await services.pool.fetch("SELECT actor FROM audit_log WHERE action = 'consent.withdraw'")
    assert [row["actor"] for row in rows] == ["dpo@acme.example"]


async def test_users_and_api_keys_show_their_secret_once(
    services: ApiServices, acme: Tenant, reader: Any
) -> None:
    client: Reader = await reader(services, acme, Role.ADMIN)
    made = await client.post("/settings/users", email="Cecil@Acme.example", role="supervisor")
    assert made.status_code == 201
    secret = re.search(r'<code class="secret" id="secret">([^<]+)</code>', made.text)
    assert secret is not None
    login = Reader(client.http._transport.app)  # type: ignore[attr-defined]
    try:
        assert (await login.log_in("cecil@acme.example", secret.group(1))).headers["location"] == "/password"
    finally:
        await login.http.aclose()
    listed = await client.http.get("/settings")
    assert "cecil@acme.example" in listed.text and secret.group(1) not in listed.text

    key = await client.post("/settings/api-keys", name="CRM export", role="viewer")
    token = re.search(r'id="secret">(htk_[^<]+)</code>', key.text)
    assert key.status_code == 201 and token is not None
    api = await client.http.get("/api/v1/recordings", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert api.status_code == 200
    key_id = re.search(r'action="/settings/api-keys/([0-9a-f-]{36})/revoke"', key.text)
    assert key_id is not None
    assert (await client.post(f"/settings/api-keys/{key_id.group(1)}/revoke")).status_code == 200
    gone = await client.http.get("/api/v1/recordings", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert gone.status_code == 401


async def _audit(pool: asyncpg.Pool, action: str) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = $1", action)
    return count


async def test_the_waveform_is_not_a_playback_and_a_bundle_download_is_audited(
    services: ApiServices, acme: Tenant, reader: Any
) -> None:
    call = await record_call(services, acme, seconds=4.0)
    client: Reader = await reader(services, acme, Role.DPO)
    wave = await client.http.get(f"/recordings/{call.recording.id}/waveform")
    assert wave.status_code == 200 and wave.json()["duration"] == pytest.approx(4.0)
    assert [len(channel["max"]) for channel in wave.json()["channels"]] == [1000, 1000]
    assert await _audit(services.pool, "recording.play") == 0
    page = await client.http.get(f"/recordings/{call.ref}")
    assert 'preload="none"' in page.text  # opening the page fetches no audio

    opened = await client.post("/access-requests", requester="Kiss Péter", number="+36 1 234 5678")
    case_id = opened.headers["location"].rsplit("/", 1)[1]
    early = await client.post(f"/access-requests/{case_id}/delivered")
    assert early.status_code == 409 and "export the copy first" in early.text
    assert (await client.post(f"/access-requests/{case_id}/export")).status_code == 303
    bundle = await client.http.get(f"/access-requests/{case_id}/bundle")
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    assert bundle.content[:2] == b"PK"
    assert await _audit(services.pool, "access_request.download") == 1
    assert await _audit(services.pool, "recording.export") == 1
    assert (await client.post(f"/access-requests/{case_id}/close", note="answered")).status_code == 303
    assert (await client.http.get(f"/access-requests/{case_id}/bundle")).status_code == 410
