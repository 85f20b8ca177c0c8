"""What the API tests of holds, access requests, erasure, settings and the audit trail share: reading problem
documents and audit rows, and the role table every endpoint is checked against."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from storage.principal import ROLE_PERMISSIONS, Permission, Role

AsUser = Callable[[Role], Awaitable[httpx.AsyncClient]]
AsKey = Callable[[Role], Awaitable[httpx.AsyncClient]]
AsOther = Callable[[], Awaitable[httpx.AsyncClient]]
Targets = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    method: str
    path: str  # with {names} filled from the targets
    permission: Permission
    success: int
    body: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def request(self, client: httpx.AsyncClient, ids: Mapping[str, Any]) -> Awaitable[httpx.Response]:
        body = None if self.body is None else {k: _fill(v, ids) for k, v in self.body.items()}
        return client.request(self.method, self.path.format(**ids), json=body, params={**self.params} or None)


def _fill(value: Any, ids: Mapping[str, Any]) -> Any:
    """``"{name}"`` is the target itself (a number stays a number); other text has the targets filled in."""
    if not isinstance(value, str) or "{" not in value:
        return value
    if value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    return value.format(**ids)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


async def audit_rows(pool: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT * FROM audit_log WHERE action = $1 ORDER BY seq", action
    )
    return rows


async def check_roles(
    client: httpx.AsyncClient, role: Role, endpoints: list[Endpoint], targets: Targets
) -> None:
    """Every endpoint: 2xx for a role with its permission, a 403 problem naming the permission otherwise. Each
    call gets fresh targets, so one endpoint's success does not change what the next one finds."""
    for endpoint in endpoints:
        response = await endpoint.request(client, await targets())
        if endpoint.permission in ROLE_PERMISSIONS[role]:
            assert response.status_code == endpoint.success, (endpoint, response.text)
        else:
            found = problem(response, 403)
            assert found["detail"] == f"the role {role.value} may not do this ({endpoint.permission.value})"


def same_problem(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Two problem documents alike but for the path they answer."""
    return {k: v for k, v in a.items() if k != "instance"} == {k: v for k, v in b.items() if k != "instance"}
