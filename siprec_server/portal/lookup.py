"""Finding the reader's tenant's objects for a page; another tenant's is a 404 page, audited.

The same rule as the API (:mod:`siprec_server.api.recordings`): a recording or case the tenant does not have
answers exactly like a missing one, and the attempt goes to the tenant's audit trail as
``<kind>.access_denied`` with the id asked for (the entry does not say whether it exists elsewhere).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request

from storage.access_requests import AccessRequest
from storage.audit import AuditEntry
from storage.errors import NotFoundError
from storage.models import Recording
from storage.recording_search import get_recording
from storage.reference import normalize_reference

from .errors import PageError
from .guard import PortalUser, portal_state

__all__ = ["access_request_of", "denied", "recording_of"]


def _printable(text: str, limit: int) -> str:
    """Text for the audit trail: control characters (NUL included, which jsonb refuses) as U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text[:limit])


def _canonical(text: str) -> str:
    try:
        return str(UUID(text))
    except ValueError:
        return normalize_reference(text) or text


async def denied(request: Request, user: PortalUser, *, kind: str, requested: str) -> PageError:
    """Audit a request for a ``kind`` object the reader's tenant does not have; the 404 page to raise."""
    api = portal_state(request).services
    shown = _printable(requested.strip(), 100)
    details: dict[str, Any] = {"requested": shown, "path": _printable(request.url.path, 200), "via": "portal"}
    await api.audit.record(
        api.pool,
        AuditEntry(
            actor=user.actor(request),
            action=f"{kind}.access_denied",
            tenant_id=user.principal.tenant_id,
            object_kind=kind,
            object_id=_canonical(shown),
            details=details,
        ),
    )
    return PageError(404)


async def recording_of(request: Request, user: PortalUser, id_or_reference: str) -> Recording:
    """The reader's tenant's recording by uuid or reference (as typed); an audited 404 page otherwise."""
    api = portal_state(request).services
    found = await get_recording(api.pool, user.principal.tenant_id, id_or_reference)
    if found is None:
        raise await denied(request, user, kind="recording", requested=id_or_reference)
    return found


async def access_request_of(request: Request, user: PortalUser, case_id: UUID) -> AccessRequest:
    api = portal_state(request).services
    try:
        return await api.access.show(user.principal.tenant_id, case_id)
    except NotFoundError:
        raise await denied(request, user, kind="access_request", requested=str(case_id)) from None
