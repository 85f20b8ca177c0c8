"""Errors as RFC 9457 problem documents: bad input is 422 with field errors (never a 500), domain errors
map to their statuses, an unexpected failure is a generic 500 whose cause only the log sees."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from siprec_server.api import ApiProblem, not_found
from storage.errors import (
    CatalogueError,
    ConflictError,
    KeyUnavailableError,
    LifecycleError,
    NotFoundError,
    PolicyRuleError,
    RecordingNotFoundError,
    StatutoryFloorError,
    TwoPersonRuleError,
    UnderHoldError,
)
from storage.principal import Role

MakeClient = Callable[[], httpx.AsyncClient]
AsUser = Callable[[Role], Awaitable[httpx.AsyncClient]]
RFC9457 = {"type", "title", "status", "detail", "instance"}


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert set(body) >= RFC9457 and body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize(
    ("body", "content_type", "fields"),
    [
        (b'{"email": "admin@acme.example", "password": ', "application/json", ["body.44"]),
        (b"not json at all", "application/json", ["body.0"]),
        (b'{"email": 42, "password": ["x"]}', "application/json", ["body.email", "body.password"]),
        (b'{"email": "admin@acme.example"}', "application/json", ["body.password"]),
        (b'{"email": "", "password": "x"}', "application/json", ["body.email"]),
        (b'{"email": "a@b.hu", "password": "x", "remember": true}', "application/json", ["body.remember"]),
        (b"[]", "application/json", ["body"]),
        (b"", "application/json", ["body"]),
    ],
)
async def test_malformed_login_bodies_are_422_with_field_errors(
    make_client: MakeClient, body: bytes, content_type: str, fields: list[str]
) -> None:
    response = await make_client().post(
        "/api/v1/session", content=body, headers={"Content-Type": content_type}
    )
    found = problem(response, 422)
    assert found["title"] == "Unprocessable Content" and found["instance"] == "/api/v1/session"
    errors = found["errors"]
    assert isinstance(errors, list)
    assert [e["field"] for e in errors] == fields
    assert all(set(e) == {"field", "message", "type"} for e in errors)
    assert "password" not in str(found.get("body", ""))


async def test_field_errors_never_echo_what_was_sent(make_client: MakeClient) -> None:
    response = await make_client().post(
        "/api/v1/session", json={"email": "eva@acme.example", "password": 31415926535, "x": "Titkos jelszó"}
    )
    found = problem(response, 422)
    assert "31415926535" not in response.text and "Titkos" not in response.text
    assert {e["field"] for e in found["errors"]} == {"body.password", "body.x"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/users", {"email": "uj@acme.example", "role": "superuser"}, "body.role"),
        ("POST", "/api/v1/users", {"email": "uj@acme.example", "role": 3}, "body.role"),
        ("POST", "/api/v1/users", {"email": "uj@acme.example"}, "body.role"),
        ("POST", "/api/v1/api-keys", {"name": "", "role": "viewer"}, "body.name"),
        ("POST", "/api/v1/api-keys", {"name": "x" * 101, "role": "viewer"}, "body.name"),
        ("PATCH", "/api/v1/users/{me}", {"role": "Admin"}, "body.role"),
        ("PATCH", "/api/v1/users/not-a-uuid", {"role": "viewer"}, "path.user_id"),
        ("GET", "/api/v1/users?limit=0", None, "query.limit"),
        ("GET", "/api/v1/users?limit=201", None, "query.limit"),
        ("GET", "/api/v1/api-keys?limit=many", None, "query.limit"),
        ("DELETE", "/api/v1/api-keys/12345", None, "path.key_id"),
    ],
)
async def test_wrong_types_and_unknown_values_are_422(
    as_user: AsUser, method: str, path: str, body: object, field: str
) -> None:
    admin = await as_user(Role.ADMIN)
    me = (await admin.get("/api/v1/me")).json()["user_id"]
    found = problem(await admin.request(method, path.format(me=me), json=body), 422)
    assert field in [e["field"] for e in found["errors"]]  # type: ignore[union-attr]


async def test_a_value_a_service_refuses_is_422_with_its_message(as_user: AsUser) -> None:
    admin = await as_user(Role.ADMIN)
    found = problem(
        await admin.post("/api/v1/users", json={"email": "not an address", "role": "viewer"}), 422
    )
    assert found["detail"] == "not an e-mail address"


async def test_unknown_paths_and_methods_are_problems_too(as_user: AsUser) -> None:
    admin = await as_user(Role.ADMIN)
    assert problem(await admin.get("/api/v1/nothing-here"), 404)["detail"] == "no such resource"
    found = problem(await admin.put("/api/v1/me"), 405)
    assert found["title"] == "Method Not Allowed"


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (NotFoundError("no such hold"), 404, "no such hold"),
        (RecordingNotFoundError("no recording HT-7K3M-Q9RX"), 404, "no recording HT-7K3M-Q9RX"),
        (UnderHoldError("held by hold 3 (litigation)"), 409, "held by hold 3 (litigation)"),
        (StatutoryFloorError("Fgytv. 17/B § keeps it 5 years"), 409, "Fgytv. 17/B § keeps it 5 years"),
        (TwoPersonRuleError("a second person must approve"), 409, "a second person must approve"),
        (ConflictError("number +3612345678 already belongs to another tenant"), 409, None),
        (PolicyRuleError(("consent needs a prompt", "no retention class")), 422, None),
        (LifecycleError("the recording is not finished"), 422, "the recording is not finished"),
        (ValueError("since is after until"), 422, "since is after until"),
        (KeyUnavailableError("key of recording 42 destroyed"), 410, "the recording's key was destroyed"),
        (ApiProblem(418, "short and stout"), 418, "short and stout"),
        (not_found("recording"), 404, "no such recording"),
    ],
)
async def test_domain_errors_map_to_their_statuses(
    app: FastAPI, make_client: MakeClient, error: Exception, status: int, detail: str | None
) -> None:
    async def failing() -> None:
        raise error

    app.add_api_route("/api/v1/test-failure", failing, methods=["GET"])
    found = problem(await make_client().get("/api/v1/test-failure"), status)
    assert found["detail"] == (detail if detail is not None else str(error))
    assert found["instance"] == "/api/v1/test-failure"


async def test_an_unexpected_failure_is_a_generic_500_and_logged(
    app: FastAPI, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing() -> None:
        raise CatalogueError("cannot list: connection to 10.0.0.5 refused, password authentication failed")

    async def crashing() -> None:
        raise RuntimeError("internal state 0xdeadbeef")

    app.add_api_route("/api/v1/test-failure", failing, methods=["GET"])
    app.add_api_route("/api/v1/test-crash", crashing, methods=["POST"])
    client = make_client()
    for method, path, text in (
        ("GET", "/api/v1/test-failure", "10.0.0.5"),
        ("POST", "/api/v1/test-crash", "0xdeadbeef"),
    ):
        caplog.clear()
        response = await client.request(method, path)
        found = problem(response, 500)
        assert found["detail"] == "the server failed to answer this request; it has been logged"
        assert text not in response.text
        assert response.headers["cache-control"] == "no-store"
        records = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert records and records[0].exc_info is not None and text in caplog.text


async def test_the_openapi_document_is_published(make_client: MakeClient) -> None:
    client = make_client()
    document = (await client.get("/api/v1/openapi.json")).json()
    assert document["info"]["title"] == "Hangtár API"
    assert {
        "/api/v1/session",
        "/api/v1/me",
        "/api/v1/me/password",
        "/api/v1/users",
        "/api/v1/api-keys",
    } <= set(document["paths"])
    assert set(document["components"]["securitySchemes"]) == {"apiKey", "session"}
    assert document["paths"]["/api/v1/users"]["post"]["responses"]["422"]["content"] == {
        "application/problem+json": {}
    }
    assert (await client.get("/api/v1/docs")).status_code == 200


AsKey = Callable[[Role], Awaitable[httpx.AsyncClient]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/api-keys", {"name": "crm\x00", "role": "viewer"}),
        ("POST", "/api/v1/users", {"email": "eva\x00@acme.example", "role": "viewer"}),
        ("GET", "/api/v1/users?cursor=eyJlIjoiYVx1MDAwMCJ9", None),  # {"e": "a\u0000"}
        ("GET", "/api/v1/recordings?since=0001-01-01T00:00:00%2B01:00", None),
        ("GET", "/api/v1/recordings?until=9999-12-31T23:59:59-01:00", None),
    ],
)
async def test_input_the_database_cannot_hold_is_422_not_500(
    as_key: AsKey, method: str, path: str, body: dict[str, str] | None
) -> None:
    """NUL in text and times beyond what a timestamp converts are refused before they reach PostgreSQL."""
    client = await as_key(Role.ADMIN)
    problem(await client.request(method, path, json=body), 422)


async def test_a_login_with_nul_in_the_email_is_422(make_client: MakeClient) -> None:
    response = await make_client().post("/api/v1/session", json={"email": "a\x00@b.hu", "password": "x"})
    problem(response, 422)
