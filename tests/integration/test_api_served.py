"""The REST API as the running server serves it: beside /healthz and /metrics, on the same HTTP port."""

from __future__ import annotations

import json
import re

import httpx

from .server import ServerProcess


def test_an_admin_made_on_the_cli_logs_in_over_http(server: ServerProcess) -> None:
    server.cli("tenants", "create", "api-served-kft", "--name", "API Served Kft.")
    made = json.loads(
        server.cli(
            "users",
            "create",
            "--tenant",
            "api-served-kft",
            "--role",
            "admin",
            "--email",
            "anna@api-served.hu",
            "--json",
        ).stdout
    )
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(base_url=base, timeout=10) as client:
        spec = client.get("/api/v1/openapi.json")
        assert spec.status_code == 200 and spec.json()["info"]["title"] == "Hangtár API"
        assert client.get("/healthz").json()["status"] == "ok"  # still served beside the API

        anonymous = client.get("/api/v1/me")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith("application/problem+json")

        login = client.post(
            "/api/v1/session", json={"email": "anna@api-served.hu", "password": made["one_time_password"]}
        )
        assert login.status_code == 200, login.text
        cookies = login.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("hangtar_session="))
        # The defaults of a production install: Secure, HttpOnly, SameSite=Strict.
        assert re.search(r"(?i)\bsecure\b", session) and re.search(r"(?i)\bhttponly\b", session)
        assert re.search(r"(?i)samesite=strict", session)
        token = session.split(";", 1)[0].split("=", 1)[1]

        me = client.get("/api/v1/me", headers={"cookie": f"hangtar_session={token}"})
        assert me.status_code == 200
        assert (me.json()["name"], me.json()["must_change_password"]) == ("anna@api-served.hu", True)
        # A one-time password must be changed before anything else is allowed.
        users = client.get("/api/v1/users", headers={"cookie": f"hangtar_session={token}"})
        assert users.status_code == 403 and "password" in users.json()["detail"].lower()

    audit = server.cli("audit", "list", "--tenant", "api-served-kft", "--action", "session.login", "--json")
    assert "anna@api-served.hu" in audit.stdout  # the login is in the audit trail ...
    for text in (audit.stdout, server.log()):  # ... and the password in neither it nor the log
        assert made["one_time_password"] not in text
