"""What the routers answer besides success: the problem responses the OpenAPI document lists, and the
audited 404 for an object that is not the caller's tenant's.

A request for another tenant's object is answered exactly like one for a missing object (404, no hint), and
the attempt goes to the caller's tenant's audit trail as ``<kind>.access_denied`` with the id asked for: the
entry does not say whether that object exists elsewhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from storage.audit import AuditEntry
from storage.principal import Principal

from .deps import client_origin
from .problems import PROBLEM_JSON, ApiProblem, not_found
from .services import ApiServices

__all__ = ["ERRORS", "NO_STORE", "PROBLEM", "denied", "no_store", "printable"]

PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}, "description": "a problem document (RFC 9457)"}
ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((401, 403, 404, 409, 422), PROBLEM)
NO_STORE = {"Cache-Control": "no-store"}  # personal data: kept by no cache, the browser's included


def no_store(response: Response) -> None:
    """A router dependency: answers carry ``Cache-Control: no-store`` (they may hold personal data)."""
    response.headers.update(NO_STORE)


def printable(text: str, limit: int = 200) -> str:
    """Text for the audit trail: at most ``limit`` characters, control characters (NUL included, which
    jsonb refuses) as U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text[:limit])


async def denied(
    api: ApiServices, request: Request, principal: Principal, *, kind: str, object_id: str, noun: str
) -> ApiProblem:
    """Audit a request for a ``kind`` object the caller's tenant does not have; the 404 to raise."""
    await api.audit.record(
        api.pool,
        AuditEntry(
            actor=principal.actor(client_origin(request)),
            action=f"{kind}.access_denied",
            tenant_id=principal.tenant_id,
            object_kind=kind,
            object_id=printable(object_id, 100),
            details={"method": request.method, "path": printable(request.url.path)},
        ),
    )
    return not_found(noun)
